"""SAM's ViT image encoder as an mmseg backbone."""
from functools import partial
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from segment_anything.modeling import ImageEncoderViT

from ..utils.recompute import checkpoint_block
from ..utils.sam_checkpoint import (OFFICIAL_CHECKPOINTS, SAM_ARCHS,
                                    TINY_VIT_ARCHS, SAMCheckpointError,
                                    arch_name, describe_encoder,
                                    encoder_family)
from .base_sam_backbone import BaseSAMBackbone, resolve_arch


def resize_abs_pos_embed(pos_embed: torch.Tensor,
                         size: Tuple[int, int]) -> torch.Tensor:
    """Resize a (1, H0, W0, C) position embedding to (1, *size, C)."""
    if tuple(pos_embed.shape[1:3]) == tuple(size):
        return pos_embed
    x = pos_embed.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
    return x.permute(0, 2, 3, 1).to(pos_embed.dtype)


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """Resize a (L0, head_dim) relative position table to length rows."""
    if rel_pos.shape[0] == length:
        return rel_pos
    x = rel_pos.float().t().unsqueeze(0)  # (1, head_dim, L0)
    x = F.interpolate(x, size=length, mode='linear', align_corners=False)
    return x.squeeze(0).t().to(rel_pos.dtype)


@MODELS.register_module()
class SAMViT(BaseSAMBackbone):
    """SAM's ViT image encoder (``ImageEncoderViT`` as ``self.encoder``);
    position embeddings are resized for other input sizes.

    Args:
        arch (str | dict): ``'vit_b'``, ``'vit_l'``, ``'vit_h'``, or a dict
            with ``embed_dim``, ``depth``, ``num_heads``,
            ``global_attn_indexes`` and optionally ``window_size`` (14),
            ``patch_size`` (16), ``mlp_ratio`` (4).
        img_size (int): Square input size. Default 1024.
        **kwargs: See :class:`BaseSAMBackbone`.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit_b',
                 img_size: int = 1024,
                 **kwargs):
        name, spec = resolve_arch(
            arch, SAM_ARCHS, 'SAM', ('embed_dim', 'depth', 'num_heads'),
            ('a TinyViT encoder', TINY_VIT_ARCHS, 'SAMTinyViT'))
        if name is None:
            spec.setdefault('global_attn_indexes', ())
            name = arch_name(spec['embed_dim'], spec['depth'])
        patch_size = spec.get('patch_size', 16)
        if img_size % patch_size:
            raise ValueError(f'img_size={img_size} must be a multiple of the '
                             f'patch size {patch_size}.')
        self.arch_spec = spec
        super().__init__(arch_name=name, img_size=img_size, **kwargs)

    @property
    def num_out_layers(self) -> int:
        return self.arch_spec['depth']

    def build_encoder(self) -> nn.Module:
        spec = self.arch_spec
        return ImageEncoderViT(
            img_size=self.img_size,
            patch_size=spec.get('patch_size', 16),
            embed_dim=spec['embed_dim'],
            depth=spec['depth'],
            num_heads=spec['num_heads'],
            mlp_ratio=spec.get('mlp_ratio', 4),
            out_chans=self.out_channels,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            global_attn_indexes=tuple(spec['global_attn_indexes']),
            window_size=spec.get('window_size', 14),
        )

    def check_encoder_state(
            self, path: str,
            state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if encoder_family(state) == 'tiny_vit':
            raise SAMCheckpointError(
                f'{path!r} holds a TinyViT image encoder (MobileSAM), but the '
                f'backbone is SAM\'s ViT ({self.arch_name}). Use the backbone '
                "type='SAMTinyViT' (configs/_base_/models/mobile_sam.py) or "
                'an official SAM ViT checkpoint.')
        found = describe_encoder(state)
        if (found['embed_dim'] != self.arch_spec['embed_dim']
                or found['depth'] != self.arch_spec['depth']):
            found_name = arch_name(found['embed_dim'], found['depth'])
            hint = ''
            if found_name in OFFICIAL_CHECKPOINTS:
                hint = f" or set the backbone's arch='{found_name}'"
            want = OFFICIAL_CHECKPOINTS.get(self.arch_name, 'a matching file')
            raise SAMCheckpointError(
                f'{path!r} holds a SAM {found_name} image encoder, but the '
                f'backbone is {self.arch_name} (embed_dim='
                f'{self.arch_spec["embed_dim"]}, depth='
                f'{self.arch_spec["depth"]}). Use {want}{hint}.')
        # resize position embeddings pretrained at another input size
        state = dict(state)
        own = self.encoder.state_dict()
        if 'pos_embed' in state and 'pos_embed' in own:
            state['pos_embed'] = resize_abs_pos_embed(
                state['pos_embed'], tuple(own['pos_embed'].shape[1:3]))
        for key, value in state.items():
            if key.endswith(('rel_pos_h', 'rel_pos_w')) and key in own:
                state[key] = resize_rel_pos(value, own[key].shape[0])
        return state

    def forward_encoder(
            self, x: torch.Tensor
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        enc = self.encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        checkpointing = self.checkpointing
        outs = {}
        last = len(enc.blocks) if self.out_embedding else \
            max(self.out_indices) + 1
        for i, blk in enumerate(enc.blocks[:last]):
            x = checkpoint_block(blk, x) if checkpointing else blk(x)
            if i in self.out_indices:
                outs[i] = x.permute(0, 3, 1, 2)
        features = [outs[i] for i in self.out_indices]
        if not self.out_embedding:
            return features, None
        return features, enc.neck(x.permute(0, 3, 1, 2))
