"""SSF (Lian et al., NeurIPS 2022): a learnable per-channel scale and
shift after the operations of the frozen ViT."""
from functools import partial
from typing import List, Sequence, Union

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .base_adapter import BaseSAMAdapter
from .encoder_hooks import (EncoderHooks, channels_first, encoder_factory,
                            out_channels_of)
from .targets import encoder_description, match_targets

# SSF-ADA after: the patch embedding, and per block LN1, the fused qkv,
# the attention projection, LN2, MLP fc1 (before the activation) and fc2.
SSF_TARGETS = (
    r'patch_embed',
    r'blocks\.\d+\.norm1',
    r'blocks\.\d+\.attn\.qkv',
    r'blocks\.\d+\.attn\.proj',
    r'blocks\.\d+\.norm2',
    r'blocks\.\d+\.mlp\.lin1',
    r'blocks\.\d+\.mlp\.lin2',
)
# add these to also scale and shift the neck (the ViT's last "norm")
SSF_NECK_TARGETS = (r'neck\.\d+', )


class ScaleShift(nn.Module):
    """``y = x * scale + shift`` per channel (``channel_dim`` -1: tokens,
    1: (N, C, H, W)); ``scale ~ N(1, init_std)``, ``shift ~ N(0,
    init_std)``."""

    def __init__(self,
                 dim: int,
                 channel_dim: int = -1,
                 init_std: float = 0.02,
                 **factory):
        super().__init__()
        self.channel_dim = channel_dim
        self.scale = nn.Parameter(torch.ones(dim, **factory))
        self.shift = nn.Parameter(torch.zeros(dim, **factory))
        if init_std > 0:
            nn.init.normal_(self.scale, mean=1.0, std=init_std)
            nn.init.normal_(self.shift, std=init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1, ) if self.channel_dim == -1 else (-1, 1, 1)
        scale = self.scale.view(shape).to(x.dtype)
        shift = self.shift.view(shape).to(x.dtype)
        return x * scale + shift

    def extra_repr(self) -> str:
        return f'dim={self.scale.numel()}, channel_dim={self.channel_dim}'


@MODELS.register_module()
class SSF(BaseSAMAdapter):
    """A :class:`ScaleShift` on the output of each module named by targets.

    Args:
        targets (str | list[str]): Module-name regex(es) (``re.fullmatch``).
            Default :data:`SSF_TARGETS`; add :data:`SSF_NECK_TARGETS` for
            the neck.
        init_std (float): Std of the initial scale (around 1) and shift
            (around 0); 0 starts exactly at SAM. Default 0.02.
    """

    needs_encoder_grad = True

    def __init__(self,
                 targets: Union[str, Sequence[str]] = SSF_TARGETS,
                 init_std: float = 0.02,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.targets = targets
        self.init_std = init_std
        # module name with '.' -> '_' (ModuleDict keys cannot hold dots)
        self.scale_shift = nn.ModuleDict()
        self._hooks = EncoderHooks()

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        names = match_targets([n for n, _ in encoder.named_modules() if n],
                              self.targets,
                              'SSF',
                              where=encoder_description(encoder))
        factory = encoder_factory(encoder)
        self._hooks.bind(encoder, 'SSF')
        for name in names:
            module = encoder.get_submodule(name)
            key = name.replace('.', '_')
            self.scale_shift[key] = ScaleShift(
                out_channels_of(module),
                channel_dim=1 if channels_first(module) else -1,
                init_std=self.init_std,
                **factory)
            self._hooks.add(name, partial(self._hook, key))
        return []

    def _hook(self, key: str, module: nn.Module, args,
              output: torch.Tensor) -> torch.Tensor:
        return self.scale_shift[key](output)
