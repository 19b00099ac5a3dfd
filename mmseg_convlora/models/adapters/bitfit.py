"""BitFit (Ben Zaken et al., "BitFit: Simple Parameter-efficient
Fine-tuning for Transformer-based Masked Language-models", ACL 2022):
train only the bias terms of the frozen ViT."""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
from mmseg.registry import MODELS

from .base_adapter import BaseSAMAdapter
from .targets import encoder_description, match_targets

BITFIT_TARGETS = r'(.+\.)?bias'


@MODELS.register_module()
class BitFit(BaseSAMAdapter):
    """Unfreeze every bias of SAM's image encoder.

    After :class:`SAMViT` has loaded and frozen the encoder, the bias
    parameters whose names ``re.fullmatch`` ``targets`` get
    ``requires_grad=True`` again; nothing is added or replaced, so the model
    is exactly pretrained SAM at initialisation and the state-dict keys are
    SAM's. By default that is every bias of the ViT: patch embedding, per
    block ``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.lin1``,
    ``mlp.lin2`` (11 C per block), and the neck's two LayerNorm2d (its convs
    have no bias): 452,352 parameters on ViT-H, so 3,957,888 trainable with
    the binary decoder (paper: 3.96M).

    The frozen encoder stays in eval mode (SAM's ViT has no dropout or batch
    norm, so this changes nothing); the optimizer's ``bias_decay_mult=0``
    keeps weight decay off these biases. Composes with every other adapter
    (a LoRA wrapper takes the same bias Parameter over, so it keeps
    training).

    Args:
        targets (str | list[str]): Regex(es) over the encoder's parameter
            names (``re.fullmatch``). Default: every ``*.bias``.
        init_cfg (dict, optional): Unused.
    """

    needs_encoder_grad = True
    applies_to_any_backbone = True

    def __init__(self,
                 targets: Union[str, Sequence[str]] = BITFIT_TARGETS,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.targets = [targets] if isinstance(targets, str) \
            else list(targets)
        # plain list: these parameters belong to the encoder
        self._params: List[Tuple[str, nn.Parameter]] = []

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        params = dict(encoder.named_parameters())
        names = match_targets(
            list(params), self.targets, 'BitFit', 'parameter',
            encoder_description(encoder))
        self._params = [(name, params[name]) for name, _ in names]
        for _, param in self._params:
            param.requires_grad_(True)
        return []

    @property
    def parameter_names(self) -> List[str]:
        """Names (inside the encoder) of the parameters BitFit trains."""
        return [name for name, _ in self._params]
