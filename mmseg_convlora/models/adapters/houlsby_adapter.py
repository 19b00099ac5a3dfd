"""Houlsby et al.'s Adapter (ICML 2019): bottleneck MLPs after the
attention and the MLP of every block."""
from functools import partial
from typing import List, Sequence, Union

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from ...utils.deprecated_alias import register_deprecated_alias
from .base_adapter import BaseSAMAdapter, check_positive_int
from .encoder_hooks import EncoderHooks, encoder_factory

ADAPTER_POSITIONS = ('attn', 'mlp')
_ACTIVATIONS = dict(GELU=nn.GELU, ReLU=nn.ReLU, SiLU=nn.SiLU)


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))`` on channels-last tokens of width ``dim``;
    ``up`` zero-init, ``act`` 'GELU', 'ReLU' or 'SiLU'."""

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 act: str = 'GELU',
                 **factory):
        super().__init__()
        self.down = nn.Linear(dim, hidden_dim, **factory)
        self.act = _ACTIVATIONS[act]()
        self.up = nn.Linear(hidden_dim, dim, **factory)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


@MODELS.register_module()
class HoulsbyAdapter(BaseSAMAdapter):
    """A :class:`BottleneckAdapter` after each block's ``attn`` and/or ``mlp``.

    Args:
        hidden_dim (int): Bottleneck width d. Default 2.
        positions (Sequence[str]): Any of 'attn', 'mlp'. Default both.
        act (str): Bottleneck activation. Default 'GELU'.
    """

    needs_encoder_grad = True

    def __init__(self,
                 hidden_dim: int = 2,
                 positions: Union[str, Sequence[str]] = ADAPTER_POSITIONS,
                 act: str = 'GELU',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_positive_int(hidden_dim, 'HoulsbyAdapter hidden_dim')
        positions = (positions, ) if isinstance(positions, str) \
            else tuple(positions)
        bad = [p for p in positions if p not in ADAPTER_POSITIONS]
        if bad or not positions:
            raise ValueError(
                f'HoulsbyAdapter positions must be a non-empty subset '
                f'of {ADAPTER_POSITIONS}, got {positions!r}.')
        if act not in _ACTIVATIONS:
            raise ValueError(f'HoulsbyAdapter act must be one of '
                             f'{sorted(_ACTIVATIONS)}, got {act!r}.')
        self.hidden_dim = hidden_dim
        self.positions = positions
        self.act = act
        self.blocks = nn.ModuleList()  # [i][position], built in apply_to
        self._hooks = EncoderHooks()

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        self._hooks.bind(encoder, 'HoulsbyAdapter')
        factory = encoder_factory(encoder)
        dim = encoder.patch_embed.proj.out_channels
        for i in range(len(encoder.blocks)):
            self.blocks.append(
                nn.ModuleDict({
                    pos:
                    BottleneckAdapter(dim, self.hidden_dim, self.act,
                                      **factory)
                    for pos in self.positions
                }))
            for pos in self.positions:
                self._hooks.add(f'blocks.{i}.{pos}',
                                partial(self._hook, i, pos))
        return []

    def _hook(self, index: int, position: str, module: nn.Module, args,
              output: torch.Tensor) -> torch.Tensor:
        return self.blocks[index][position](output)

    def extra_repr(self) -> str:
        return (f'hidden_dim={self.hidden_dim}, positions={self.positions}, '
                f'act={self.act!r}')


register_deprecated_alias(MODELS, 'Adapter', 'HoulsbyAdapter')
