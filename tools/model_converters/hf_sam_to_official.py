"""Convert Hugging Face SAM weights into the official SAM checkpoint layout.

Usage:
    python tools/model_converters/hf_sam_to_official.py SRC OUT [--arch A]

SRC is a local copy of ``facebook/sam-vit-{base,large,huge}`` or one of its
weights files; see docs/get_started.md.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from collections import defaultdict
from typing import Dict, List, Optional

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch

WEIGHT_FILES = ('model.safetensors.index.json', 'model.safetensors',
                'pytorch_model.bin.index.json', 'pytorch_model.bin')
_MLP = r'(output_hypernetworks_mlps\.\d+|iou_prediction_head)'


class ConversionError(RuntimeError):
    """The source cannot be read or is not a Hugging Face SAM."""


def _read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise ConversionError(
            f'{path!r} is a safetensors file but the safetensors package is '
            'not installed: pip install safetensors, or convert the '
            "repository's pytorch_model.bin instead.") from err
    return load_file(path, device='cpu')


def _read_bin(path: str) -> Dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise ConversionError(
            f'Could not read {path!r} ({type(err).__name__}: {err}); is the '
            'download complete?') from err
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    return state


def _read_file(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith('.index.json'):
        with open(path) as f:
            weight_map = json.load(f).get('weight_map', {})
        if not weight_map:
            raise ConversionError(f'{path!r} has no weight_map.')
        state = {}
        for shard in sorted(set(weight_map.values())):
            state.update(_read_file(osp.join(osp.dirname(path), shard)))
        return state
    if path.endswith('.safetensors'):
        return _read_safetensors(path)
    return _read_bin(path)


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


def _mlp_depths(keys) -> Dict[str, int]:
    """Hidden ``layers.i`` count of each mask-decoder MLP (HF naming)."""
    hidden = defaultdict(set)
    for key in keys:
        m = re.match(
            rf'^mask_decoder\.{_MLP}\.(proj_in|proj_out|'
            r'layers\.(\d+))\.', key)
        if m:
            hidden.setdefault(m.group(1), set())
            if m.group(3) is not None:
                hidden[m.group(1)].add(int(m.group(3)))
    return {k: len(v) for k, v in hidden.items()}


def convert_key(key: str, mlp_depths: Dict[str, int]) -> Optional[str]:
    """Official name of the Hugging Face key ``key`` (None: dropped)."""
    k = key
    if k == 'shared_image_embedding.positional_embedding':
        return None  # duplicate of the prompt encoder's
    if k.startswith('vision_encoder.'):
        k = 'image_encoder.' + k[len('vision_encoder.'):]
        k = re.sub(r'^image_encoder\.layers\.(\d+)\.',
                   r'image_encoder.blocks.\1.', k)
        k = re.sub(r'^(image_encoder\.blocks\.\d+)\.layer_norm([12])\.',
                   r'\1.norm\2.', k)
        k = k.replace('image_encoder.patch_embed.projection.',
                      'image_encoder.patch_embed.proj.')
        for hf, off in (('conv1', '0'), ('layer_norm1', '1'), ('conv2', '2'),
                        ('layer_norm2', '3')):
            k = k.replace(f'image_encoder.neck.{hf}.',
                          f'image_encoder.neck.{off}.')
        return k
    if k.startswith('prompt_encoder.'):
        if k == 'prompt_encoder.shared_embedding.positional_embedding':
            return ('prompt_encoder.pe_layer.'
                    'positional_encoding_gaussian_matrix')
        k = k.replace('prompt_encoder.point_embed.',
                      'prompt_encoder.point_embeddings.')
        for hf, off in (('conv1', '0'), ('layer_norm1', '1'), ('conv2', '3'),
                        ('layer_norm2', '4'), ('conv3', '6')):
            k = k.replace(f'prompt_encoder.mask_embed.{hf}.',
                          f'prompt_encoder.mask_downscaling.{off}.')
        return k
    if k.startswith('mask_decoder.'):
        for hf, off in (('upscale_conv1', '0'), ('upscale_layer_norm', '1'),
                        ('upscale_conv2', '3')):
            k = k.replace(f'mask_decoder.{hf}.',
                          f'mask_decoder.output_upscaling.{off}.')
        m = re.match(
            rf'^mask_decoder\.{_MLP}\.(proj_in|proj_out|'
            r'layers\.(\d+))\.(.*)$', k)
        if m:
            mlp, part, idx, rest = m.groups()
            if part == 'proj_in':
                layer = 0
            elif part == 'proj_out':
                layer = mlp_depths.get(mlp, 0) + 1
            else:
                layer = int(idx) + 1
            return f'mask_decoder.{mlp}.layers.{layer}.{rest}'
        k = re.sub(
            r'^(mask_decoder\.transformer\.layers\.\d+)\.'
            r'layer_norm(\d)\.', r'\1.norm\2.', k)
        k = k.replace('mask_decoder.transformer.layer_norm_final_attn.',
                      'mask_decoder.transformer.norm_final_attn.')
        return k
    raise ConversionError(f'Unexpected key {key!r}: not a Hugging Face '
                          'SamModel weight (vision_encoder.*, '
                          'prompt_encoder.*, mask_decoder.*).')


def hf_to_official(
        hf_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a Hugging Face ``SamModel`` state dict to the official one."""
    state = {
        k: v
        for k, v in hf_state.items()
        if not k.endswith(('pixel_mean', 'pixel_std'))
    }
    # some exports prefix everything (e.g. 'model.' or 'sam.')
    for prefix in ('model.', 'sam.'):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    if not any(k.startswith('vision_encoder.') for k in state):
        raise ConversionError(
            'No "vision_encoder.*" weights: this is not a Hugging Face '
            f'SamModel state dict (first keys: {list(state)[:5]}).')
    pe_key = 'prompt_encoder.shared_embedding.positional_embedding'
    shared = state.get('shared_image_embedding.positional_embedding')
    if pe_key not in state:
        if shared is None:
            raise ConversionError(
                'Neither prompt_encoder.shared_embedding.positional_embedding'
                ' nor shared_image_embedding.positional_embedding found.')
        state[pe_key] = shared
    elif shared is not None and not shared.is_meta and \
            not torch.equal(shared, state[pe_key]):
        raise ConversionError(
            'shared_image_embedding and prompt_encoder.shared_embedding '
            'hold different positional encodings; SAM has one.')
    depths = _mlp_depths(state)
    out = {}
    for key, value in state.items():
        new = convert_key(key, depths)
        if new is None:
            continue
        if new in out:
            raise ConversionError(f'Two keys map to {new!r}.')
        out[new] = value
    return out


def infer_sam_shape(state: Dict[str, torch.Tensor]) -> dict:
    """Hyper-parameters of a SAM from its official-layout weights."""
    enc = {
        k[len('image_encoder.'):]: v
        for k, v in state.items() if k.startswith('image_encoder.')
    }
    embed_dim, _, patch, _ = enc['patch_embed.proj.weight'].shape
    grid = enc['pos_embed'].shape[1]
    depth = len({int(k.split('.')[1]) for k in enc if k.startswith('blocks.')})
    head_dim = enc['blocks.0.attn.rel_pos_h'].shape[1]
    global_idx, window = [], 0
    for i in range(depth):
        length = enc[f'blocks.{i}.attn.rel_pos_h'].shape[0]
        if length == 2 * grid - 1:
            global_idx.append(i)
        else:
            window = (length + 1) // 2
    dec = {
        k[len('mask_decoder.'):]: v
        for k, v in state.items() if k.startswith('mask_decoder.')
    }
    t_depth = len({
        int(k.split('.')[2])
        for k in dec if k.startswith('transformer.layers.')
    })
    iou_layers = len({
        k.split('.')[2]
        for k in dec if k.startswith('iou_prediction_head.layers.')
    })
    return dict(
        img_size=grid * patch,
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=embed_dim // head_dim,
        mlp_ratio=enc['blocks.0.mlp.lin1.weight'].shape[0] / embed_dim,
        out_chans=enc['neck.0.weight'].shape[0],
        global_attn_indexes=tuple(global_idx),
        window_size=window,
        mask_in_chans=state['prompt_encoder.mask_downscaling.3.weight'].
        shape[0],
        num_multimask_outputs=dec['mask_tokens.weight'].shape[0] - 1,
        transformer_depth=t_depth,
        transformer_mlp_dim=dec['transformer.layers.0.mlp.lin1.weight'].
        shape[0],
        iou_head_depth=iou_layers,
        iou_head_hidden_dim=dec['iou_prediction_head.layers.0.weight'].shape[0]
    )


def check_official_layout(state: Dict[str, torch.Tensor]) -> dict:
    """Compare ``state`` with a ``segment_anything`` SAM of its shape.

    Returns:
        dict: The inferred hyper-parameters.

    Raises:
        ConversionError: Missing or extra keys, or a shape mismatch.
    """
    from functools import partial

    import torch.nn as nn
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder,
                                           PromptEncoder, Sam,
                                           TwoWayTransformer)
    try:
        s = infer_sam_shape(state)
    except (KeyError, IndexError) as err:
        raise ConversionError(
            f'The converted weights lack a SAM part ({err}); the source is '
            'incomplete or not a SAM.') from err
    grid = s['img_size'] // s['patch_size']
    with torch.device('meta'):
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=s['img_size'],
                patch_size=s['patch_size'],
                embed_dim=s['embed_dim'],
                depth=s['depth'],
                num_heads=s['num_heads'],
                mlp_ratio=s['mlp_ratio'],
                out_chans=s['out_chans'],
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                global_attn_indexes=s['global_attn_indexes'],
                window_size=s['window_size']),
            prompt_encoder=PromptEncoder(
                embed_dim=s['out_chans'],
                image_embedding_size=(grid, grid),
                input_image_size=(s['img_size'], s['img_size']),
                mask_in_chans=s['mask_in_chans']),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=s['num_multimask_outputs'],
                transformer=TwoWayTransformer(
                    depth=s['transformer_depth'],
                    embedding_dim=s['out_chans'],
                    mlp_dim=s['transformer_mlp_dim'],
                    num_heads=1),
                transformer_dim=s['out_chans'],
                iou_head_depth=s['iou_head_depth'],
                iou_head_hidden_dim=s['iou_head_hidden_dim']))
    ref = sam.state_dict()
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
    return s


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
    if args.arch is not None and arch != args.arch:
        raise ConversionError(f'{path!r} holds SAM {arch}, not {args.arch}.')
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
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
