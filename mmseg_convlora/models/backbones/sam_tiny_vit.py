"""MobileSAM's TinyViT image encoder as an mmseg backbone."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from ..utils.recompute import checkpoint_block
from ..utils.sam_checkpoint import (SAM_ARCHS, TINY_VIT_ARCHS,
                                    SAMCheckpointError, describe_tiny_vit,
                                    encoder_family, tiny_vit_arch_name)
from .base_sam_backbone import BaseSAMBackbone, resolve_arch
from .tiny_vit import TinyViTEncoder

# TinyViT's ImageNet classifier, still in mobile_sam.pt
_UNUSED_PREFIXES = ('head.', 'norm_head.')

DEFAULT_TINY_VIT_QKV = r'layers\.\d+\.blocks\.\d+\.attn\.qkv'


@MODELS.register_module()
class SAMTinyViT(BaseSAMBackbone):
    """MobileSAM's TinyViT image encoder, a drop-in for :class:`SAMViT`.

    LoRA and Conv-LoRA take ``targets=DEFAULT_TINY_VIT_QKV``.

    Args:
        arch (str | dict): ``'mobile_sam'``, or a dict with ``embed_dims``,
            ``depths``, ``num_heads`` and ``window_sizes`` (four entries
            each); optional ``mlp_ratio`` (4), ``mbconv_expand_ratio`` (4),
            ``local_conv_size`` (3).
        img_size (int): Square input size, a multiple of 16. Default 1024.
        **kwargs: See :class:`BaseSAMBackbone`; ``out_indices`` choose
            stages (outputs at 1/4, 1/8, 1/16, 1/16 of the input).
    """

    out_layer_kind = 'stage'
    accepted_adapters = ('any', 'sam')

    def __init__(self,
                 arch: Union[str, dict] = 'mobile_sam',
                 img_size: int = 1024,
                 **kwargs):
        name, spec = resolve_arch(
            arch, TINY_VIT_ARCHS, 'TinyViT',
            ('embed_dims', 'depths', 'num_heads', 'window_sizes'),
            ("SAM's ViT", SAM_ARCHS, 'SAMViT'))
        if name is None:
            name = tiny_vit_arch_name(spec['embed_dims'], spec['depths'])
        self.arch_spec = spec
        super().__init__(arch_name=name, img_size=img_size, **kwargs)

    @property
    def num_out_layers(self) -> int:
        return len(self.arch_spec['depths'])

    def build_encoder(self) -> nn.Module:
        spec = self.arch_spec
        return TinyViTEncoder(
            img_size=self.img_size,
            embed_dims=spec['embed_dims'],
            depths=spec['depths'],
            num_heads=spec['num_heads'],
            window_sizes=spec['window_sizes'],
            mlp_ratio=spec.get('mlp_ratio', 4.0),
            mbconv_expand_ratio=spec.get('mbconv_expand_ratio', 4.0),
            local_conv_size=spec.get('local_conv_size', 3),
            out_channels=self.out_channels)

    def check_encoder_state(
            self, path: str,
            state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        family = encoder_family(state)
        if family != 'tiny_vit':
            what = "SAM's ViT" if family == 'vit' else 'no TinyViT'
            raise SAMCheckpointError(
                f'{path!r} holds {what} image encoder, but the backbone is '
                f'the TinyViT of MobileSAM ({self.arch_name}). Use '
                "mobile_sam.pt, or the backbone type='SAMViT' (with its arch) "
                'for an official SAM ViT file.')
        found = describe_tiny_vit(state)
        want = dict(
            embed_dims=tuple(self.arch_spec['embed_dims']),
            depths=tuple(self.arch_spec['depths']))
        if found != want:
            raise SAMCheckpointError(
                f'{path!r} holds the TinyViT {tiny_vit_arch_name(**found)}, '
                f'but the backbone is {self.arch_name}. Use a matching file '
                'or change the backbone arch.')
        return {
            k: v
            for k, v in state.items() if not k.startswith(_UNUSED_PREFIXES)
        }

    def forward_encoder(
            self, x: torch.Tensor
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        return self.encoder.forward_features(
            x,
            run_block=checkpoint_block if self.checkpointing else None,
            out_indices=self.out_indices,
            with_neck=self.out_embedding)
