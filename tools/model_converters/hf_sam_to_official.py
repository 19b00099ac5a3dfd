"""Convert Hugging Face SAM weights into the official SAM checkpoint layout.

    python tools/model_converters/hf_sam_to_official.py SRC OUT [--arch A]

SRC is a local copy of ``facebook/sam-vit-{base,large,huge}`` or one of its
weights files; see docs/get_started.md.
"""
import argparse
import json
import os.path as osp
import re
import sys
from collections import Counter
from typing import Dict, List, Optional

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch
from mmengine.utils import mkdir_or_exist

WEIGHT_FILES = ('model.safetensors.index.json', 'model.safetensors',
                'pytorch_model.bin.index.json', 'pytorch_model.bin')
PARTS = ('vision_encoder.', 'prompt_encoder.', 'mask_decoder.')
_MLP = r'mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head)'
# HF key -> official key, applied in order: the inverse of transformers'
# models/sam/convert_sam_to_hf.py. An MLP's last layer, proj_out, is
# numbered in hf_to_official (it depends on the MLP's depth).
RENAMES = [
    (r'^vision_encoder\.layers\.', 'image_encoder.blocks.'),
    (r'^vision_encoder\.', 'image_encoder.'),
    (r'\.patch_embed\.projection\.', '.patch_embed.proj.'),
    (r'\.neck\.conv1\.', '.neck.0.'),
    (r'\.neck\.layer_norm1\.', '.neck.1.'),
    (r'\.neck\.conv2\.', '.neck.2.'),
    (r'\.neck\.layer_norm2\.', '.neck.3.'),
    (r'\.shared_embedding\.positional_embedding$',
     '.pe_layer.positional_encoding_gaussian_matrix'),
    (r'\.point_embed\.', '.point_embeddings.'),
    (r'\.mask_embed\.conv1\.', '.mask_downscaling.0.'),
    (r'\.mask_embed\.layer_norm1\.', '.mask_downscaling.1.'),
    (r'\.mask_embed\.conv2\.', '.mask_downscaling.3.'),
    (r'\.mask_embed\.layer_norm2\.', '.mask_downscaling.4.'),
    (r'\.mask_embed\.conv3\.', '.mask_downscaling.6.'),
    (r'\.upscale_conv1\.', '.output_upscaling.0.'),
    (r'\.upscale_layer_norm\.', '.output_upscaling.1.'),
    (r'\.upscale_conv2\.', '.output_upscaling.3.'),
    (r'\.layer_norm(\d|_final_attn)\.', r'.norm\1.'),
    (rf'^({_MLP})\.layers\.(\d+)\.',
     lambda m: f'{m[1]}.layers.{int(m[2]) + 1}.'),
    (rf'^({_MLP})\.proj_in\.', r'\1.layers.0.'),
]


class ConversionError(RuntimeError):
    """The source cannot be read or is not a Hugging Face SAM."""


def _read_file(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith('.index.json'):
        with open(path) as f:
            shards = set(json.load(f).get('weight_map', {}).values())
        if not shards:
            raise ConversionError(f'{path!r} has no weight_map.')
        state = {}
        for shard in sorted(shards):
            state.update(_read_file(osp.join(osp.dirname(path), shard)))
        return state
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ConversionError(
                f'{path!r} is a safetensors file but the safetensors package '
                'is not installed: pip install safetensors, or convert the '
                "repository's pytorch_model.bin instead.") from err
        return load_file(path, device='cpu')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise ConversionError(
            f'Could not read {path!r} ({type(err).__name__}: {err}); is the '
            'download complete?') from err
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    return state


def find_weights(src: str) -> str:
    """The weights file to read in ``src`` (a folder or a file)."""
    if osp.isfile(src):
        return src
    if not osp.isdir(src):
        raise ConversionError(f'{src!r} does not exist.')
    try:
        import safetensors  # noqa: F401
        order = WEIGHT_FILES
    except ImportError:  # prefer what can be read
        order = WEIGHT_FILES[2:] + WEIGHT_FILES[:2]
    for name in order:
        if osp.isfile(osp.join(src, name)):
            return osp.join(src, name)
    raise ConversionError(
        f'No SAM weights in {src!r}: expected one of {list(WEIGHT_FILES)} '
        '(a local copy of facebook/sam-vit-base, -large or -huge).')


def load_hf_state_dict(src: str) -> Dict[str, torch.Tensor]:
    return _read_file(find_weights(src))


def hf_to_official(
        hf_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a Hugging Face ``SamModel`` state dict to the official one."""
    state = {
        k: v
        for k, v in hf_state.items()
        if not k.endswith(('pixel_mean', 'pixel_std'))
    }
    for prefix in ('model.', 'sam.'):  # some exports prefix every key
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    if not any(k.startswith('vision_encoder.') for k in state):
        raise ConversionError(
            'No "vision_encoder.*" weights: this is not a Hugging Face '
            f'SamModel state dict (first keys: {list(state)[:5]}).')
    # HF keeps SAM's one positional encoding twice (some files once)
    shared = state.pop('shared_image_embedding.positional_embedding', None)
    pe = state.setdefault(
        'prompt_encoder.shared_embedding.positional_embedding', shared)
    if pe is None:
        raise ConversionError(
            'Neither prompt_encoder.shared_embedding.positional_embedding nor'
            ' shared_image_embedding.positional_embedding found.')
    if shared is not None and not shared.is_meta and \
            not torch.equal(shared, pe):
        raise ConversionError(
            'shared_image_embedding and prompt_encoder.shared_embedding '
            'hold different positional encodings; SAM has one.')
    hidden = Counter(m[1] for m in map(
        re.compile(rf'^({_MLP})\.layers\.\d+\.weight$').match, state) if m)
    out = {}
    for key, value in state.items():
        if not key.startswith(PARTS):
            raise ConversionError(
                f'Unexpected key {key!r}: not a Hugging Face SamModel weight '
                f'({", ".join(p + "*" for p in PARTS)}).')
        new = key
        for pattern, repl in RENAMES:
            new = re.sub(pattern, repl, new)
        new = re.sub(rf'^({_MLP})\.proj_out\.',
                     lambda m: f'{m[1]}.layers.{hidden[m[1]] + 1}.', new)
        if new in out:
            raise ConversionError(f'Two keys map to {new!r}.')
        out[new] = value
    return out


def check_official_layout(state: Dict[str, torch.Tensor]) -> dict:
    """Compare ``state`` with a ``segment_anything`` SAM of its shape.

    Returns:
        dict: The inferred image encoder hyper-parameters.

    Raises:
        ConversionError: Missing or extra keys, or a shape mismatch.
    """
    from functools import partial

    import torch.nn as nn
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder,
                                           PromptEncoder, Sam,
                                           TwoWayTransformer)

    from mmseg_convlora.models.utils import sub_state_dict
    enc = sub_state_dict(state, 'image_encoder.')
    dec = sub_state_dict(state, 'mask_decoder.')

    def count(keys, prefix, i):
        return len({k.split('.')[i] for k in keys if k.startswith(prefix)})

    try:
        embed_dim, _, patch, _ = enc['patch_embed.proj.weight'].shape
        grid = enc['pos_embed'].shape[1]
        rel_pos = [
            len(enc[f'blocks.{i}.attn.rel_pos_h'])
            for i in range(count(enc, 'blocks.', 1))
        ]
        # global attention spans the grid, windowed attention a window
        windows = [n for n in rel_pos if n != 2 * grid - 1]
        vit = dict(
            img_size=grid * patch,
            patch_size=patch,
            embed_dim=embed_dim,
            depth=len(rel_pos),
            num_heads=embed_dim // enc['blocks.0.attn.rel_pos_h'].shape[1],
            mlp_ratio=len(enc['blocks.0.mlp.lin1.weight']) / embed_dim,
            out_chans=len(enc['neck.0.weight']),
            global_attn_indexes=tuple(i for i, n in enumerate(rel_pos)
                                      if n == 2 * grid - 1),
            window_size=(windows[-1] + 1) // 2 if windows else 0)
        dim = vit['out_chans']
        prompt = dict(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(grid * patch, grid * patch),
            mask_in_chans=len(
                state['prompt_encoder.mask_downscaling.3.weight']))
        two_way = dict(
            depth=count(dec, 'transformer.layers.', 2),
            embedding_dim=dim,
            mlp_dim=len(dec['transformer.layers.0.mlp.lin1.weight']),
            num_heads=1)
        decoder = dict(
            num_multimask_outputs=len(dec['mask_tokens.weight']) - 1,
            transformer_dim=dim,
            iou_head_depth=count(dec, 'iou_prediction_head.layers.', 2),
            iou_head_hidden_dim=len(
                dec['iou_prediction_head.layers.0.weight']))
    except (KeyError, IndexError) as err:
        raise ConversionError(
            f'The converted weights lack a SAM part ({err}); the source is '
            'incomplete or not a SAM.') from err
    with torch.device('meta'):
        ref = Sam(
            image_encoder=ImageEncoderViT(
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                **vit),
            prompt_encoder=PromptEncoder(**prompt),
            mask_decoder=MaskDecoder(
                transformer=TwoWayTransformer(**two_way),
                **decoder)).state_dict()
    missing = sorted(set(ref) - set(state))
    extra = sorted(set(state) - set(ref))
    wrong = [
        f'{k}: {tuple(state[k].shape)} vs {tuple(ref[k].shape)}' for k in ref
        if k in state and state[k].shape != ref[k].shape
    ]
    if missing or extra or wrong:
        raise ConversionError(
            'The converted weights do not match the official SAM layout: '
            f'missing {missing[:6]}, unexpected {extra[:6]}, shapes '
            f'{wrong[:6]}.')
    return vit


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Hugging Face SAM (facebook/sam-vit-*) -> official SAM '
        'checkpoint layout')
    parser.add_argument(
        'src',
        help='local folder of facebook/sam-vit-* '
        '(or one of its weights files)')
    parser.add_argument('out', help='output .pth file')
    parser.add_argument(
        '--arch',
        choices=['vit_b', 'vit_l', 'vit_h'],
        help='refuse weights of another arch')
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, torch.Tensor]:
    from mmseg_convlora.models.utils import OFFICIAL_CHECKPOINTS, arch_name
    args = parse_args(argv)
    path = find_weights(args.src)
    print(f'Reading {path}')
    state = hf_to_official(_read_file(path))
    shape = check_official_layout(state)
    arch = arch_name(shape['embed_dim'], shape['depth'])
    if args.arch not in (None, arch):
        raise ConversionError(f'{path!r} holds SAM {arch}, not {args.arch}.')
    mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
    torch.save(state, args.out)
    n = sum(v.numel() for v in state.values())
    print(f'Wrote {args.out}: SAM {arch}, {len(state)} tensors, {n:,} '
          'values, official key layout.')
    if arch in OFFICIAL_CHECKPOINTS:
        print(f'Use it with --cfg-options model.sam_checkpoint={args.out} '
              f'(the configs expect checkpoints/{OFFICIAL_CHECKPOINTS[arch]})'
              '.')
    return state


def _cli(argv: Optional[List[str]] = None) -> int:
    try:
        main(argv)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(_cli())
