"""The square resize of the configs' pipelines with SAM's transform API."""
from typing import Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F


class SquareResize:
    """``ResizeLongestSide`` replaced by the configs' square resize.

    Args:
        size (int): The model's square input size.
    """

    def __init__(self, size: int):
        self.target_length = size

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> (S, S, C) uint8, as mmcv's ``Resize``."""
        size = self.target_length
        return mmcv.imresize(image, (size, size), interpolation='bilinear')

    def _scale(self, original_size: Tuple[int, int]) -> Tuple[float, float]:
        h, w = original_size
        return self.target_length / w, self.target_length / h

    def apply_coords(self, coords: np.ndarray,
                     original_size: Tuple[int, int]) -> np.ndarray:
        """(..., 2) x, y pixel coordinates of the original image."""
        sx, sy = self._scale(original_size)
        coords = np.array(coords, dtype=float, copy=True)
        coords[..., 0] *= sx
        coords[..., 1] *= sy
        return coords

    def apply_boxes(self, boxes: np.ndarray,
                    original_size: Tuple[int, int]) -> np.ndarray:
        """(N, 4) x0, y0, x1, y1 boxes of the original image."""
        boxes = self.apply_coords(boxes.reshape(-1, 2, 2), original_size)
        return boxes.reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> (B, C, S, S), bilinear."""
        size = self.target_length
        return F.interpolate(
            image, (size, size), mode='bilinear', align_corners=False)

    def apply_coords_torch(self, coords: torch.Tensor,
                           original_size: Tuple[int, int]) -> torch.Tensor:
        sx, sy = self._scale(original_size)
        coords = coords.clone().float()
        coords[..., 0] *= sx
        coords[..., 1] *= sy
        return coords

    def apply_boxes_torch(self, boxes: torch.Tensor,
                          original_size: Tuple[int, int]) -> torch.Tensor:
        boxes = self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size)
        return boxes.reshape(-1, 4)
