"""The contract between the backbones and their adapters."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

# What each value of ``BaseSAMAdapter.applies_to`` means, for messages.
ENCODER_KINDS = {
    'any': 'any backbone (its layers are found by name)',
    'sam': "SAM-family encoders (type='SAMViT' or 'SAMTinyViT')",
    'sam_vit': "the blocks of SAM's ViT (type='SAMViT')",
}


class BaseSAMAdapter(BaseModule):
    """Base class of the adapters of a frozen encoder: the backbone calls
    :meth:`apply_to` once and :meth:`forward_embedding` on every embedding.

    Attributes:
        applies_to (str): The encoders :meth:`apply_to` works on, a key of
            :data:`ENCODER_KINDS`.
        needs_encoder_grad (bool): Trainable parameters live inside the
            encoder; without such an adapter the encoder runs under
            ``no_grad``.
        replaces_modules (bool): :meth:`apply_to` replaces encoder modules;
            these adapters are applied first (:func:`apply_adapters`).
    """

    applies_to: str = 'sam_vit'
    needs_encoder_grad: bool = False
    replaces_modules: bool = False

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        """Modify the frozen ``encoder`` in place; return the modules placed
        in it (they follow the model's train/eval mode)."""
        return []

    def forward_embedding(
            self,
            inputs: torch.Tensor,
            embedding: torch.Tensor,
            data_samples: Optional[Sequence] = None) -> torch.Tensor:
        """The embedding (B, C, h, w) adjusted, given the normalised
        input (B, 3, H, W) and the batch's data samples."""
        return embedding

    def aux_losses(self) -> Dict[str, torch.Tensor]:
        """Losses produced by the last forward pass (already weighted)."""
        return {}


def apply_adapters(adapters: Sequence[BaseSAMAdapter], encoder: nn.Module,
                   owner: str, accepted: Sequence[str]) -> List[nn.Module]:
    """Apply ``adapters`` to ``encoder``, the module-replacing ones first
    (so hooks land on the final modules), each group in config order.

    Args:
        adapters (Sequence[BaseSAMAdapter]): The built adapters.
        encoder (nn.Module): The frozen encoder.
        owner (str): The backbone's name, for messages.
        accepted (Sequence[str]): The ``applies_to`` values it takes.

    Returns:
        list[nn.Module]: The modules the adapters placed in the encoder.
    """
    for adp in adapters:
        if adp.applies_to not in accepted:
            fitting = sorted(
                name for name, cls in MODELS.module_dict.items()
                if isinstance(cls, type) and issubclass(cls, BaseSAMAdapter)
                and cls.applies_to in accepted)
            raise ValueError(
                f'{type(adp).__name__} works on '
                f'{ENCODER_KINDS[adp.applies_to]}, not on {owner}, which '
                f'takes {", ".join(fitting)} or no adapter (decoder-only).')
    modules: List[nn.Module] = []
    for adp in sorted(adapters, key=lambda adp: not adp.replaces_modules):
        modules.extend(adp.apply_to(encoder))
    return modules


def collect_aux_losses(
        adapters: Sequence[BaseSAMAdapter]) -> Dict[str, torch.Tensor]:
    """The adapters' :meth:`~BaseSAMAdapter.aux_losses`, summed by name."""
    losses: Dict[str, torch.Tensor] = {}
    for adp in adapters:
        for name, value in adp.aux_losses().items():
            losses[name] = losses[name] + value if name in losses else value
    return losses
