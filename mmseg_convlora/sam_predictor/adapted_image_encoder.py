"""A segmentor's adapted encoder in the place of SAM's image encoder."""
from typing import Optional

import torch
import torch.nn as nn


class AdaptedImageEncoder(nn.Module):
    """A segmentor's backbone and neck in the place of ``Sam.image_encoder``.

    Args:
        segmentor (SAMSegmentor): The fine-tuned model (shared, not copied).

    Shapes:
        input (B, 3, S, S), normalised -> (B, C, S / 16, S / 16).
    """

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor
        self.img_size = segmentor.backbone.img_size
        self.data_samples: Optional[list] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentor.extract_feat(x, self.data_samples)[0]
