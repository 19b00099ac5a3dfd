"""The square resize of the configs' pipelines with SAM's transform API."""
from typing import Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide


class SquareResize(ResizeLongestSide):
    """``ResizeLongestSide`` replaced by the configs' square ``size``; the
    coordinate and box methods are SAM's, on this square shape."""

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int,
                             long_side_length: int) -> Tuple[int, int]:
        return long_side_length, long_side_length

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> (S, S, C) uint8, as mmcv's ``Resize``."""
        size = self.target_length
        return mmcv.imresize(image, (size, size), interpolation='bilinear')

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> (B, C, S, S), bilinear."""
        size = self.target_length
        return F.interpolate(
            image, (size, size), mode='bilinear', align_corners=False)
