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


def check_positive_int(value, what: str) -> None:
    """Refuse a ``value`` (``what``, e.g. 'VPT num_tokens') that is not a
    positive integer."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f'{what} must be a positive integer, got {value!r}.')


class BaseSAMAdapter(BaseModule):
    """Base class of the adapters of a frozen encoder.

    Attributes:
        applies_to (str): A key of :data:`ENCODER_KINDS`.
        needs_encoder_grad (bool): Trainable parameters live inside the
            encoder.
        replaces_modules (bool): :meth:`apply_to` replaces encoder modules
            (these adapters are applied first).
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

    def hooked_modules(self) -> Dict[str, nn.Module]:
        """Encoder module name -> the module its forward hooks sit on."""
        hooks = getattr(self, '_hooks', None)
        return {} if hooks is None else hooks.modules()


def apply_adapters(adapters: Sequence[BaseSAMAdapter], encoder: nn.Module,
                   owner: str, accepted: Sequence[str]) -> List[nn.Module]:
    """Apply ``adapters`` to ``encoder``, module-replacing ones first;
    return the modules they placed in it."""
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
