"""A segmentor's adapted encoder in the place of SAM's image encoder."""
from typing import Optional

import torch
import torch.nn as nn


class AdaptedImageEncoder(nn.Module):
    """A segmentor's (shared) backbone and neck as ``Sam.image_encoder``:
    normalised (B, 3, S, S) -> (B, C, S / 16, S / 16)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor
        self.img_size = segmentor.backbone.img_size
        self.data_samples: Optional[list] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentor.extract_feat(x, self.data_samples)[0]
