"""The square resize of the configs' pipelines with SAM's transform API."""
from typing import Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F


class SquareResize:
    """``ResizeLongestSide`` replaced by the configs' square ``size``."""

    def __init__(self, size: int):
        self.target_length = size

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> (S, S, C) uint8, as mmcv's ``Resize``."""
        size = self.target_length
        return mmcv.imresize(image, (size, size), interpolation='bilinear')

    def _scale(self, coords, original_size: Tuple[int, int]):
        """Scale (..., 2) x, y coordinates (a copy) in place."""
        h, w = original_size
        coords[..., 0] *= self.target_length / w
        coords[..., 1] *= self.target_length / h
        return coords

    def apply_coords(self, coords: np.ndarray,
                     original_size: Tuple[int, int]) -> np.ndarray:
        """(..., 2) x, y pixel coordinates of the original image."""
        return self._scale(np.array(coords, dtype=float), original_size)

    def apply_boxes(self, boxes: np.ndarray,
                    original_size: Tuple[int, int]) -> np.ndarray:
        """(N, 4) x0, y0, x1, y1 boxes of the original image."""
        return self.apply_coords(boxes.reshape(-1, 2, 2),
                                 original_size).reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> (B, C, S, S), bilinear."""
        size = self.target_length
        return F.interpolate(
            image, (size, size), mode='bilinear', align_corners=False)

    def apply_coords_torch(self, coords: torch.Tensor,
                           original_size: Tuple[int, int]) -> torch.Tensor:
        return self._scale(coords.clone().float(), original_size)

    def apply_boxes_torch(self, boxes: torch.Tensor,
                          original_size: Tuple[int, int]) -> torch.Tensor:
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2),
                                       original_size).reshape(-1, 4)
