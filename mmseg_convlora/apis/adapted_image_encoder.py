"""A segmentor's adapted encoder in the place of SAM's image encoder."""
from typing import Optional

import torch
import torch.nn as nn


class AdaptedImageEncoder(nn.Module):
    """The segmentor's image embedding, as ``Sam.image_encoder`` computes it.

    Runs the segmentor's backbone with all its adapters (LoRA, Conv-LoRA,
    CAD's added embedding, ...) and neck, if any. ``data_samples``, when
    set, are handed to the backbone (CAD reads the image the pipeline kept
    for it, ``cad_image``).

    Args:
        segmentor (SAMSegmentor): The fine-tuned model (its modules are
            shared, not copied).

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
