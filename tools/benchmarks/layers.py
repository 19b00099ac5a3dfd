"""``layers``: one ``qkv`` Linear of SAM's ViT on its own, on the token maps
of windowed and global blocks: the frozen ``nn.Linear`` (the floor),
:class:`LoRALinear` and :class:`ConvLoRALinear` (per dispatch mode).

Train: forward + backward against a fixed random output gradient (plus
``loss_moe``), the input requiring grad as in every block but the first;
infer: eval, ``no_grad``. Random weights, non-zero ``B``, spread Conv-LoRA
routing; all layers share the frozen weights.
"""
import argparse
import math
from typing import List, Tuple

import torch
import torch.nn as nn

from .common import (add_common_args, add_ratios, autocast,
                     interleaved_medians, report, setup, spread_adapters,
                     timing_note)

LAYERS = ('linear', 'lora', 'convlora')
INPUTS = ('windowed', 'global')
_WINDOW, _PATCH = 14, 16  # SAM's ViT: window size, patch size


def input_shape(kind: str, arch: str, size: int,
                batch_size: int) -> Tuple[int, int, int, int]:
    """(N, h, w, C) of a ``qkv`` input of SAM's ViT at ``size`` pixels.

    ``windowed``: the (size / 16)-token grid zero-padded to whole 14x14
    windows, one sample per window; ``global``: the whole grid.
    """
    from mmseg_convlora.models.utils import SAM_ARCHS
    from tools.make_demo_data import TINY_ENCODER
    spec = TINY_ENCODER if arch == 'tiny' else SAM_ARCHS[arch]
    window = spec.get('window_size', _WINDOW)
    grid = size // _PATCH
    if kind == 'global':
        return batch_size, grid, grid, spec['embed_dim']
    per_side = math.ceil(grid / window)
    return (batch_size * per_side**2, window, window, spec['embed_dim'])


def build_steps(args, kind: str, dispatch: str, shape: Tuple[int, ...],
                device: torch.device) -> dict:
    """The 'train' and 'infer' steps of one layer on one input."""
    from mmseg_convlora.models.adapters import ConvLoRALinear, LoRALinear
    channels = shape[-1]
    torch.manual_seed(args.seed)  # the same frozen weights for all
    layer = nn.Linear(channels, 3 * channels).requires_grad_(False)
    if kind == 'lora':
        layer = LoRALinear(layer, rank=3, alpha=32)
    elif kind == 'convlora':
        layer = ConvLoRALinear(
            layer, rank=3, alpha=32, num_experts=8, dispatch=dispatch)
    spread_adapters(layer)
    layer = layer.to(device)
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(shape, generator=gen).to(device)
    grad = torch.randn(*shape[:-1], 3 * channels, generator=gen).to(device)

    def train():
        layer.train().zero_grad(set_to_none=True)
        with autocast(args.amp, device):
            out = layer(x.detach().requires_grad_(not args.frozen_input))
        outputs, grads = [out], [grad.to(out.dtype)]
        if getattr(layer, 'last_moe_loss', None) is not None:
            outputs.append(layer.last_moe_loss)
            grads.append(None)
        if out.requires_grad:  # not a frozen Linear on a frozen input
            torch.autograd.backward(outputs, grads)

    def infer():
        layer.eval()
        with torch.no_grad(), autocast(args.amp, device):
            layer(x)

    return dict(train=train, infer=infer)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        'layers',
        help='one qkv layer: frozen Linear, LoRA, Conv-LoRA',
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--arch', default='vit_b', choices=['vit_b', 'vit_l', 'vit_h', 'tiny'])
    parser.add_argument(
        '--size', type=int, default=1024, help='input image side in pixels')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--inputs', nargs='+', default=list(INPUTS), choices=INPUTS)
    parser.add_argument(
        '--layers', nargs='+', default=list(LAYERS), choices=LAYERS)
    parser.add_argument(
        '--dispatch',
        nargs='+',
        default=['auto'],
        choices=['auto', 'grouped', 'dense'],
        help='Conv-LoRA dispatch mode(s), one row each')
    parser.add_argument(
        '--frozen-input',
        action='store_true',
        help='input without grad, as in the first block')
    add_common_args(parser, steps=5, device=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Time the layers; print them with their ratios to LoRA and to the
    frozen Linear.

    Returns:
        list[dict]: One row per (input, layer): ``input``, ``shape``,
        ``layer``, ``train_ms``, ``infer_ms`` (None where not measured) and
        their ratios ``*_vs_lora``, ``*_vs_linear``.
    """
    setup(args)
    device = torch.device(args.device)
    names = []
    for kind in dict.fromkeys(args.layers):
        dispatches = dict.fromkeys(args.dispatch) if kind == 'convlora' \
            else [None]
        names += [(kind, d) for d in dispatches]
    rows, jobs = [], {}
    for inp in args.inputs:
        shape = input_shape(inp, args.arch, args.size, args.batch_size)
        for kind, dispatch in names:
            steps = build_steps(args, kind, dispatch, shape, device)
            layer = kind if dispatch is None else f'{kind}[{dispatch}]'
            rows.append(dict(input=inp, shape=list(shape), layer=layer))
            for mode in args.modes:
                jobs[len(rows) - 1, mode] = steps[mode]
    medians = interleaved_medians(jobs, args, device)
    for i, row in enumerate(rows):
        for mode in ('train', 'infer'):
            seconds = medians.get((i, mode))
            row[f'{mode}_ms'] = None if seconds is None else 1000 * seconds
    for ref in ('lora', 'linear'):
        add_ratios(rows, ('train_ms', 'infer_ms'), 'layer', ref, 'input')

    grad = 'without' if args.frozen_input else 'with'
    title = (f'layers: arch {args.arch}, {args.size}x{args.size}, batch '
             f'{args.batch_size}, device {args.device}, amp {args.amp}, '
             f'input {grad} grad; {timing_note(args)}')
    columns = [
        ('input (N, h, w, C)', lambda r: f"{r['input']} {tuple(r['shape'])}",
         ''),
        ('layer', 'layer', ''),
        ('train (ms)', 'train_ms', '.1f'),
        ('infer (ms)', 'infer_ms', '.1f'),
        ('train/LoRA', 'train_ms_vs_lora', '.2f'),
        ('infer/LoRA', 'infer_ms_vs_lora', '.2f'),
        ('train/Linear', 'train_ms_vs_linear', '.2f'),
        ('infer/Linear', 'infer_ms_vs_linear', '.2f'),
    ]
    return report(title, columns, rows, args)
