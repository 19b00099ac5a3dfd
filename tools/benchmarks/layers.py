"""``layers``: one adapted ``qkv`` Linear on its own, on the token maps SAM's
ViT hands it: the frozen ``nn.Linear`` (the floor), :class:`LoRALinear` and
:class:`ConvLoRALinear` (per dispatch mode), side by side.

Training: forward + backward of the output against a fixed random gradient
(plus ``loss_moe`` for Conv-LoRA), the input requiring grad as in every
block but the first. Inference: eval mode, ``no_grad``, forward. Random
weights with non-zero ``B`` and spread Conv-LoRA routing; all layers share
the frozen weights. E.g. ``python tools/benchmark.py layers --arch vit_b
--size 1024`` (ViT-B at 1024x1024: 25 windows of 14x14 and the global
64x64 grid, 768 channels).
"""
import argparse
import contextlib
import json
import math
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from .common import (add_clock_argument, fmt, get_clock, interleaved_medians,
                     print_table, ratio)

LAYERS = ('linear', 'lora', 'convlora')
INPUTS = ('windowed', 'global')
_WINDOW, _PATCH = 14, 16  # SAM's ViT: window size, patch size


def input_shape(kind: str, arch: str, size: int,
                batch_size: int) -> Tuple[int, int, int, int]:
    """(N, h, w, C) of a ``qkv`` input of SAM's ViT at ``size`` pixels.

    ``windowed``: the (size / 16)-token grid zero-padded to whole 14x14
    windows, one sample per window; ``global``: the whole grid. ViT-B at
    1024: (25, 14, 14, 768) and (1, 64, 64, 768).
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


class _LayerCase:
    """One layer on one input, with its fixed input and output gradient."""

    def __init__(self, args, kind: str, dispatch: str,
                 shape: Tuple[int, int, int, int], device: torch.device):
        from mmseg_convlora.models.adapters import ConvLoRALinear, LoRALinear
        channels = shape[-1]
        torch.manual_seed(args.seed)  # the same frozen weights for all
        layer = nn.Linear(channels, 3 * channels).requires_grad_(False)
        if kind == 'lora':
            layer = LoRALinear(layer, rank=3, alpha=32)
        elif kind == 'convlora':
            layer = ConvLoRALinear(
                layer, rank=3, alpha=32, num_experts=8, dispatch=dispatch)
        with torch.no_grad():
            if kind != 'linear':
                layer.lora_B.normal_(0, 0.02)
            if kind == 'convlora':
                layer.w_gate.normal_(0, 1)  # spread the routing
        self.layer = layer.to(device)
        self.device = device
        self.amp = args.amp
        self.input_grad = not args.frozen_input
        self.clock = get_clock(args.clock)
        gen = torch.Generator().manual_seed(args.seed + 1)
        self.x = torch.randn(shape, generator=gen).to(device)
        self.grad = torch.randn(
            *shape[:-1], 3 * channels, generator=gen).to(device)

    def autocast(self):
        if self.amp == 'none':
            return contextlib.nullcontext()
        dtype = torch.float16 if self.amp == 'fp16' else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def train_step(self) -> float:
        layer = self.layer.train()
        for p in layer.parameters():
            p.grad = None
        x = self.x.detach().requires_grad_(self.input_grad)
        self._sync()
        start = self.clock()
        with self.autocast():
            out = layer(x)
        outputs, grads = [out], [self.grad.to(out.dtype)]
        if getattr(layer, 'last_moe_loss', None) is not None:
            outputs.append(layer.last_moe_loss)
            grads.append(None)
        if out.requires_grad:  # a frozen Linear on a frozen input: no
            torch.autograd.backward(outputs, grads)
        self._sync()
        return self.clock() - start

    def infer_step(self) -> float:
        self.layer.eval()
        self._sync()
        start = self.clock()
        with torch.no_grad(), self.autocast():
            self.layer(self.x)
        self._sync()
        return self.clock() - start


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        'layers',
        help='one qkv layer: frozen Linear, LoRA, Conv-LoRA',
        description='Time one qkv Linear of SAM\'s ViT on its own: frozen '
        'nn.Linear (the floor), LoRALinear and ConvLoRALinear, on the token '
        'maps of windowed and global blocks. Train: forward + backward '
        '(input with grad, as in every block but the first); infer: eval, '
        'no_grad. Median of interleaved rounds, ratios to LoRA and to the '
        'frozen Linear.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--arch', default='vit_b', choices=['vit_b', 'vit_l', 'vit_h', 'tiny'])
    parser.add_argument(
        '--size', type=int, default=1024, help='input image side in pixels')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--inputs',
        nargs='+',
        default=list(INPUTS),
        choices=INPUTS,
        help='windowed and/or global attention blocks')
    parser.add_argument(
        '--layers', nargs='+', default=list(LAYERS), choices=LAYERS)
    parser.add_argument(
        '--dispatch',
        nargs='+',
        default=['auto'],
        choices=['auto', 'grouped', 'dense'],
        help='Conv-LoRA dispatch mode(s), one row each')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['train', 'infer'],
        choices=['train', 'infer'])
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--amp',
        choices=['none', 'fp16', 'bf16'],
        default='none',
        help='autocast dtype')
    parser.add_argument(
        '--frozen-input',
        action='store_true',
        help='input without grad, as in the first block')
    add_clock_argument(parser)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--steps', type=int, default=5, help='timed rounds (median)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (CPU)')
    parser.add_argument('--json', default=None, help='also write rows here')
    parser.add_argument('--seed', type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Time the layers; print a table with the ratios to LoRA and to the
    frozen Linear.

    Returns:
        list[dict]: One row per (input, layer): ``input``, ``shape``,
        ``layer``, ``train_ms``, ``infer_ms`` (None where not measured) and
        their ratios ``*_vs_lora``, ``*_vs_linear``.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = []
    for kind in dict.fromkeys(args.layers):
        if kind == 'convlora':
            names += [(kind, d) for d in dict.fromkeys(args.dispatch)]
        else:
            names.append((kind, None))
    cases: Dict[tuple, _LayerCase] = {}
    shapes = {}
    for inp in args.inputs:
        shapes[inp] = input_shape(inp, args.arch, args.size, args.batch_size)
        for kind, dispatch in names:
            cases[(inp, kind, dispatch)] = _LayerCase(args, kind, dispatch,
                                                      shapes[inp], device)
    jobs = {}
    for mode in args.modes:
        for key, case in cases.items():
            jobs[key + (mode, )] = case.train_step if mode == 'train' \
                else case.infer_step
    medians = interleaved_medians(jobs, args.warmup, args.steps)

    rows = []
    for (inp, kind, dispatch), case in cases.items():
        row = dict(
            input=inp,
            shape=list(shapes[inp]),
            layer=kind if dispatch is None else f'{kind}[{dispatch}]')
        for mode in ('train', 'infer'):
            seconds = medians.get((inp, kind, dispatch, mode))
            row[f'{mode}_ms'] = None if seconds is None else 1000 * seconds
        rows.append(row)
    for row in rows:
        same_input = {
            r['layer']: r
            for r in rows if r['input'] == row['input']
        }
        for mode in ('train', 'infer'):
            for ref in ('lora', 'linear'):
                row[f'{mode}_ms_vs_{ref}'] = ratio(
                    row[f'{mode}_ms'],
                    same_input.get(ref, {}).get(f'{mode}_ms'))

    print(f'layers: arch {args.arch}, {args.size}x{args.size}, batch '
          f'{args.batch_size}, device {args.device}, amp {args.amp}, torch '
          f'{torch.__version__}, {torch.get_num_threads()} threads; '
          f'{args.clock} time, median of {args.steps} interleaved round(s) '
          f'after '
          f'{args.warmup} warm-up; input ' +
          ('without' if args.frozen_input else 'with') + ' grad')
    print_table([
        'input (N, h, w, C)', 'layer', 'train (ms)', 'infer (ms)',
        'train/LoRA', 'infer/LoRA', 'train/Linear', 'infer/Linear'
    ], [[
        f"{r['input']} {tuple(r['shape'])}", r['layer'],
        fmt(r['train_ms'], '.1f'),
        fmt(r['infer_ms'], '.1f'),
        fmt(r['train_ms_vs_lora'], '.2f'),
        fmt(r['infer_ms_vs_lora'], '.2f'),
        fmt(r['train_ms_vs_linear'], '.2f'),
        fmt(r['infer_ms_vs_linear'], '.2f')
    ] for r in rows])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    rows=rows,
                    args={
                        k: v
                        for k, v in vars(args).items()
                        if k not in ('func', 'argv')
                    }),
                f,
                indent=1)
    return rows
