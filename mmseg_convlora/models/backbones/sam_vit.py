"""SAM's ViT image encoder as an mmseg backbone."""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmseg.registry import MODELS
from segment_anything.modeling import ImageEncoderViT

from ..utils import (OFFICIAL_CHECKPOINTS, SAM_ARCHS, TINY_VIT_ARCHS,
                     SAMCheckpointError, arch_name, describe_encoder,
                     encoder_family, load_sam_state_dict, sub_state_dict)
from ..utils.recompute import checkpoint_context_fn
from .base_sam_backbone import BaseSAMBackbone


def resize_abs_pos_embed(pos_embed: torch.Tensor,
                         size: Tuple[int, int]) -> torch.Tensor:
    """Resize SAM's absolute position embedding (bicubic).

    Args:
        pos_embed (Tensor): (1, H0, W0, C).
        size (tuple[int, int]): Target (H, W) of the patch grid.

    Returns:
        Tensor: (1, H, W, C).
    """
    if tuple(pos_embed.shape[1:3]) == tuple(size):
        return pos_embed
    x = pos_embed.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
    return x.permute(0, 2, 3, 1).to(pos_embed.dtype)


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """Resize a decomposed relative position table (linear), as SAM's
    ``get_rel_pos`` does on the fly.

    Args:
        rel_pos (Tensor): (L0, head_dim).
        length (int): Target L (= 2 * grid size - 1).

    Returns:
        Tensor: (L, head_dim).
    """
    if rel_pos.shape[0] == length:
        return rel_pos
    x = rel_pos.float().t().unsqueeze(0)  # (1, head_dim, L0)
    x = F.interpolate(x, size=length, mode='linear', align_corners=False)
    return x.squeeze(0).t().to(rel_pos.dtype)


@MODELS.register_module()
class SAMViT(BaseSAMBackbone):
    """The image encoder of the Segment Anything Model (Kirillov et al. 2023).

    Wraps ``segment_anything.modeling.ImageEncoderViT`` (kept as
    ``self.encoder``, so the official ``image_encoder.*`` weights load into it
    unchanged), frozen by default, with optional parameter-efficient adapters
    (:class:`LoRA`, :class:`ConvLoRA`, :class:`CAD`, ...).

    Args:
        arch (str | dict): ``'vit_b'``, ``'vit_l'``, ``'vit_h'``, or a dict
            with ``embed_dim``, ``depth``, ``num_heads``,
            ``global_attn_indexes`` and optionally ``window_size`` (14),
            ``patch_size`` (16), ``mlp_ratio`` (4) for small test models.
        img_size (int): Square input size. SAM is pretrained at 1024; other
            sizes resize the absolute and the global blocks' relative
            position embeddings when the checkpoint is loaded.
        out_channels (int): Channels of the embedding (SAM: 256).
        checkpoint (str, optional): Official SAM checkpoint file; its
            ``image_encoder.*`` weights are loaded at construction. None keeps
            random weights (only sensible for tests).
        frozen (bool): Freeze all pretrained encoder weights and keep the
            encoder in eval mode. Default True.
        adapter (dict | list[dict], optional): Adapter config(s).
        with_cp (bool): Activation checkpointing of every ViT block while
            training with gradients through the encoder (LoRA, Conv-LoRA):
            only the block inputs are kept and each block runs again during
            backward (non-reentrant ``torch.utils.checkpoint``, RNG state
            preserved, so Conv-LoRA's gate noise and routing are the same and
            loss and gradients are exact; the recomputation does not replace
            the recorded ``loss_moe``). Without encoder gradients (CAD,
            decoder-only) the encoder runs under ``no_grad`` anyway.
        embedding_cache (dict, optional): See :class:`BaseSAMBackbone`.
        out_indices (Sequence[int], optional): ViT blocks whose outputs are
            also returned, (B, embed_dim, img_size / 16, img_size / 16) each,
            as mmseg's ``VisionTransformer`` gives them (e.g. ``(2, 5, 8,
            11)`` for ViT-B with ``MultiLevelNeck`` + ``UPerHead``).
        out_embedding (bool): Also return the neck's embedding (last).
            Default True.
        init_cfg (dict, optional): Unused; weights come from ``checkpoint``.

    Shapes:
        input (B, 3, img_size, img_size) -> output tuple: the
        ``out_indices`` block maps, then the embedding (B, out_channels,
        img_size / 16, img_size / 16).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit_b',
                 img_size: int = 1024,
                 out_channels: int = 256,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True,
                 adapter: Optional[Union[dict, Sequence[dict]]] = None,
                 with_cp: bool = False,
                 embedding_cache: Optional[dict] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 out_embedding: bool = True,
                 init_cfg: Optional[dict] = None):
        if isinstance(arch, str):
            if arch not in SAM_ARCHS:
                hint = ''
                if arch in TINY_VIT_ARCHS:
                    hint = (f' ({arch!r} is a TinyViT encoder: use '
                            f"type='SAMTinyViT', arch={arch!r})")
                raise ValueError(f'Unknown SAM arch {arch!r}; choose one of '
                                 f'{sorted(SAM_ARCHS)} or pass a dict'
                                 f'{hint}.')
            name = arch
            spec = dict(SAM_ARCHS[arch])
        else:
            spec = dict(arch)
            missing = {'embed_dim', 'depth', 'num_heads'} - set(spec)
            if missing:
                raise ValueError(f'Custom SAM arch dict lacks {missing}.')
            spec.setdefault('global_attn_indexes', ())
            name = arch_name(spec['embed_dim'], spec['depth'])
        patch_size = spec.get('patch_size', 16)
        if img_size % patch_size:
            raise ValueError(f'img_size={img_size} must be a multiple of the '
                             f'patch size {patch_size}.')
        self.arch_spec = spec
        super().__init__(
            arch_name=name,
            img_size=img_size,
            out_channels=out_channels,
            checkpoint=checkpoint,
            frozen=frozen,
            adapter=adapter,
            with_cp=with_cp,
            embedding_cache=embedding_cache,
            out_indices=out_indices,
            out_embedding=out_embedding,
            init_cfg=init_cfg)

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

    # ------------------------------------------------------------------ #
    def load_sam_checkpoint(self, path: str) -> None:
        """Load the ``image_encoder.*`` weights of an official SAM file.

        Raises:
            SAMCheckpointError: Missing or unreadable file, or weights of
                another arch than this backbone's.
        """
        expected = self.arch_name if self.arch_name in SAM_ARCHS else None
        full = load_sam_state_dict(path, expected)
        state = sub_state_dict(full, 'image_encoder.')
        if encoder_family(state) == 'tiny_vit':
            raise SAMCheckpointError(
                f'{path!r} holds a TinyViT image encoder (MobileSAM), but the '
                f'backbone is SAM\'s ViT ({self.arch_name}). Use the backbone '
                "type='SAMTinyViT' (arch='mobile_sam') for this file, e.g. "
                'configs/_base_/models/mobile_sam.py, or give an official '
                'SAM ViT checkpoint.')
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
        state = self._fit_position_embeddings(state)
        try:
            missing, unexpected = self.encoder.load_state_dict(
                state, strict=False)
        except RuntimeError as err:  # shape mismatch
            raise SAMCheckpointError(
                f'{path!r} does not fit the {self.arch_name} image encoder '
                f'of this config: {err}') from err
        if missing or unexpected:
            raise SAMCheckpointError(
                f'{path!r} does not fit the {self.arch_name} image encoder: '
                f'missing keys {missing[:8]}, unexpected keys '
                f'{unexpected[:8]}.')

    def _fit_position_embeddings(
            self, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Resize position embeddings pretrained at another input size."""
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
        """The ViT and its neck; see :meth:`BaseSAMBackbone.forward_encoder`.
        """
        enc = self.encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        # Non-reentrant checkpointing needs no input that requires grad, so
        # block 0 (whose input is the frozen patch embedding) is checkpointed
        # too; the gradients reach the adapter parameters inside it.
        checkpointing = self.checkpointing
        outs = {}
        last = len(enc.blocks) if self.out_embedding else \
            max(self.out_indices) + 1
        for i, blk in enumerate(enc.blocks[:last]):
            if checkpointing:
                x = cp.checkpoint(
                    blk,
                    x,
                    use_reentrant=False,
                    preserve_rng_state=True,
                    context_fn=checkpoint_context_fn)
            else:
                x = blk(x)
            if i in self.out_indices:
                outs[i] = x.permute(0, 3, 1, 2)
        features = [outs[i] for i in self.out_indices]
        if not self.out_embedding:
            return features, None
        return features, enc.neck(x.permute(0, 3, 1, 2))
