"""SAM-Adapter (Chen et al. 2023): prompts from the image's high
frequencies and the patch embedding, added before every block of SAM's ViT.
"""
import math
from functools import partial
from typing import List, Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .base_adapter import BaseSAMAdapter, check_positive_int
from .cad import high_frequency_components
from .encoder_hooks import EncoderHooks, encoder_factory


@MODELS.register_module()
class SAMAdapter(BaseSAMAdapter):
    """SAM-Adapter's prompt generator on SAM's frozen ViT (docs/methods.md).

    Args:
        scale_factor (int): C / c. Default 16.
        freq_rate (float): Spectrum fraction the high-pass removes. 0.25.
        handcrafted_tune (bool): Use the high-frequency branch. Default True.
        embedding_tune (bool): Use the patch-embedding branch. Default True.
        zero_init (bool): Start at SAM (zero up projection). Default False.
    """

    needs_encoder_grad = True

    def __init__(self,
                 scale_factor: int = 16,
                 freq_rate: float = 0.25,
                 handcrafted_tune: bool = True,
                 embedding_tune: bool = True,
                 zero_init: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_positive_int(scale_factor, 'SAMAdapter scale_factor')
        if not (handcrafted_tune or embedding_tune):
            raise ValueError('SAMAdapter needs handcrafted_tune and/or '
                             'embedding_tune.')
        self.scale_factor = scale_factor
        self.freq_rate = freq_rate
        self.handcrafted_tune = handcrafted_tune
        self.embedding_tune = embedding_tune
        self.zero_init = zero_init
        self.lightweight_mlps = nn.ModuleList()
        self.shared_mlp: Optional[nn.Linear] = None
        self.embedding_generator: Optional[nn.Linear] = None
        self.handcrafted_generator: Optional[nn.Conv2d] = None
        self._hooks = EncoderHooks()
        self._feature: Optional[torch.Tensor] = None

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        factory = encoder_factory(encoder)
        proj = encoder.patch_embed.proj
        dim = proj.out_channels
        if dim % self.scale_factor:
            raise ValueError(f'SAMAdapter scale_factor={self.scale_factor} '
                             f'must divide the ViT width {dim}.')
        self._hooks.bind(encoder, 'SAMAdapter')
        hidden = dim // self.scale_factor
        self.shared_mlp = nn.Linear(hidden, dim, **factory)
        if self.embedding_tune:
            self.embedding_generator = nn.Linear(dim, hidden, **factory)
        if self.handcrafted_tune:
            self.handcrafted_generator = nn.Conv2d(
                proj.in_channels,
                hidden,
                kernel_size=proj.kernel_size,
                stride=proj.stride,
                padding=proj.padding,
                **factory)
        for _ in range(len(encoder.blocks)):
            self.lightweight_mlps.append(
                nn.Sequential(nn.Linear(hidden, hidden, **factory), nn.GELU()))
        self._init_parameters()
        self._hooks.add('patch_embed', self._patch_embed_hook)
        for i in range(len(encoder.blocks)):
            self._hooks.add(
                f'blocks.{i}', partial(self._block_hook, i), pre=True)
        return []

    def _init_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * \
                    m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)
        if self.zero_init:
            nn.init.zeros_(self.shared_mlp.weight)
            nn.init.zeros_(self.shared_mlp.bias)

    def __getstate__(self) -> dict:
        """The state without ``_feature`` (``deepcopy`` refuses it)."""
        state = self.__dict__.copy()
        state['_feature'] = None
        return state

    def _patch_embed_hook(self, module: nn.Module, args,
                          output: torch.Tensor) -> None:
        """``f`` from the image (the hook's input) and its patch tokens."""
        feature = 0
        if self.embedding_tune:
            feature = self.embedding_generator(output)  # (B, h, w, c)
        if self.handcrafted_tune:
            image = args[0]
            hfc = high_frequency_components(image, self.freq_rate)
            hfc = self.handcrafted_generator(hfc.to(image.dtype))
            feature = feature + hfc.permute(0, 2, 3, 1)
        self._feature = feature

    def _block_hook(self, index: int, module: nn.Module, args):
        if self._feature is None:
            raise RuntimeError(
                'SAMAdapter: a block ran before the patch embedding; the '
                'encoder must run patch_embed first (SAMViT does).')
        x = args[0]
        prompt = self.shared_mlp(self.lightweight_mlps[index](self._feature))
        if prompt.shape[1:3] != x.shape[1:3]:
            raise RuntimeError(
                f'SAMAdapter: block {index} sees a {tuple(x.shape[1:3])} '
                f'grid but the prompts are {tuple(prompt.shape[1:3])}.')
        return (x + prompt.to(x.dtype), ) + tuple(args[1:])
