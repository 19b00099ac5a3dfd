"""The contract between the backbones (:class:`SAMViT`, ...,
:class:`PEFTBackbone`) and their parameter-efficient adapters."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule


class BaseSAMAdapter(BaseModule):
    """Base class of the adapters that :class:`SAMViT` builds from its config.

    An adapter changes the frozen SAM image encoder in one or both of two
    ways, and :class:`SAMViT` calls it at exactly these points:

    1. :meth:`apply_to` once after the pretrained weights are loaded and
       frozen: it may replace sub-modules of the encoder in place (LoRA wraps
       the ``qkv`` Linear layers) and returns the modules it added, so the
       backbone can keep them in training mode while the frozen encoder stays
       in eval mode.
    2. :meth:`forward_embedding` after the encoder (and its neck): it may add
       to the image embedding, seeing the network input and the data samples
       too (CAD's parallel CNN).

    Losses that the adapter produces during the forward pass (Conv-LoRA's
    load-balancing loss) are returned by :meth:`aux_losses`, which the
    segmentor adds to the task loss.

    Attributes:
        needs_encoder_grad (bool): Whether gradients must flow through the
            frozen encoder (True when trainable parameters live inside it).
            When no adapter needs it the encoder runs under ``no_grad`` and
            stores no activations.
        replaces_modules (bool): Whether :meth:`apply_to` replaces
            sub-modules of the encoder (LoRA, Conv-LoRA, VPT).
            :func:`apply_adapters` applies these first, so that the hooks
            of the other adapters are placed on the final modules.
        applies_to_any_backbone (bool): Whether :meth:`apply_to` finds what
            it adapts by module or parameter name in any module (LoRA,
            Conv-LoRA, BitFit), so :class:`PEFTBackbone` can apply it to
            mmseg's backbones; the others are written for SAM's encoder.
    """

    needs_encoder_grad: bool = False
    replaces_modules: bool = False
    applies_to_any_backbone: bool = False

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        """Modify ``encoder`` (a ``segment_anything`` ``ImageEncoderViT``).

        Args:
            encoder (nn.Module): The frozen image encoder.

        Returns:
            list[nn.Module]: Modules the adapter placed inside the encoder.
        """
        return []

    def forward_embedding(
            self,
            inputs: torch.Tensor,
            embedding: torch.Tensor,
            data_samples: Optional[Sequence] = None) -> torch.Tensor:
        """Adjust the image embedding.

        Args:
            inputs (Tensor): The normalised network input, (B, 3, H, W).
            embedding (Tensor): The encoder output, (B, C_out, H/16, W/16).
            data_samples (list[SegDataSample], optional): The batch's data
                samples, when the segmentor has them (CAD reads the image
                the pipeline kept for it).

        Returns:
            Tensor: The adjusted embedding, same shape.
        """
        return embedding

    def aux_losses(self) -> Dict[str, torch.Tensor]:
        """Losses produced by the last forward pass (already weighted)."""
        return {}


def apply_adapters(adapters: Sequence[BaseSAMAdapter],
                   encoder: nn.Module) -> List[nn.Module]:
    """Apply ``adapters`` to ``encoder``: the module-replacing ones first
    (in config order), then the others (in config order).

    Returns:
        list[nn.Module]: The modules the adapters placed in the encoder.
    """
    ordered = sorted(adapters, key=lambda adp: not adp.replaces_modules)
    modules: List[nn.Module] = []
    for adp in ordered:
        modules.extend(adp.apply_to(encoder))
    return modules
