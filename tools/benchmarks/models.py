"""``models``: training step (``model.train_step`` with mmengine's optimizer
wrappers, AdamW), inference (eval, ``no_grad``, predict), peak memory of
one step and trainable parameters of every fine-tuning method, with random
weights and ratios to LoRA.

Memory is the CUDA peak allocated, or on the CPU the peak RSS growth, by
default each method and mode in a fresh process. "+cp" adds activation
checkpointing (e.g. lora+cp), "+guard" the non-finite gradient check of
NonFiniteLossHook; ``lora_unfused`` (on request) is LoRA with its training
forward as three products, as before the fused GEMM.
"""
import argparse
import functools
import gc
import json
import os.path as osp
import subprocess
import sys
from typing import List, Sequence

import torch
import torch.nn.functional as F

from .common import (AMP_DTYPES, add_common_args, add_ratios, autocast,
                     interleaved_medians, report, setup, spread_adapters,
                     timing_note)

SCRIPT = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'benchmark.py')
MODEL_METHODS = ('decoder_only', 'lora', 'lora_merged', 'convlora', 'cad',
                 'cad_cached')
_BASE_METHODS = {
    # name -> (adapter kind, trains, uses cached embeddings)
    'decoder_only': (None, True, False),
    'lora': ('lora', True, False),
    'lora_merged': ('lora', False, False),  # inference only: merged weights
    'convlora': ('convlora', True, False),
    'cad': ('cad', True, False),
    'cad_cached': ('cad', True, True),
    'lora_unfused': ('lora', True, False),
}
_RESULT_TAG = 'BENCH_MODELS_RESULT '


def scaled_global_indexes(full_depth: int, full_global: Sequence[int],
                          depth: int) -> List[int]:
    """Global-attention blocks of a ``depth``-block ViT with SAM's ratio of
    global to windowed blocks, evenly spaced, the last block global
    (``vit_b``: depth 12 -> [2, 5, 8, 11]; 6 -> [2, 5]; 4 -> [3])."""
    if depth >= full_depth:
        return list(full_global)
    n_global = max(1, round(depth * len(full_global) / full_depth))
    return [round((k + 1) * depth / n_global) - 1 for k in range(n_global)]


def three_step_lora(layer, x: torch.Tensor) -> torch.Tensor:
    """``W x + b + s B A x`` as three products (``lora_unfused``)."""
    out = F.linear(x, layer.weight, layer.bias)
    return out + layer.scaling * F.linear(
        F.linear(layer.lora_dropout(x), layer.lora_A), layer.lora_B)


def _method_parts(name: str):
    base, _, suffix = name.partition('+')
    if base not in _BASE_METHODS or suffix not in ('', 'cp', 'guard'):
        raise SystemExit(f'unknown method {name!r}; choose from '
                         f'{list(_BASE_METHODS)}, optionally with "+cp" '
                         '(activation checkpointing) or "+guard" (the '
                         'non-finite gradient check), e.g. lora+cp')
    return base, suffix == 'cp'


def model_cfg(method: str,
              arch: str,
              size: int,
              depth=None,
              dispatch: str = 'auto',
              cad_size=None) -> dict:
    """A SAMSegmentor config with random weights for ``method``."""
    from mmseg_convlora.models.backbones import DEFAULT_TINY_VIT_QKV
    from mmseg_convlora.models.utils import SAM_ARCHS
    from tools.make_demo_data import TINY_DECODER, TINY_EMBED_DIM, TINY_ENCODER
    base, with_cp = _method_parts(method)
    kind, _, cached = _BASE_METHODS[base]
    targets, out_channels, decoder = {}, 256, None
    if arch == 'tiny':
        spec = dict(TINY_ENCODER)
        out_channels, decoder = TINY_EMBED_DIM, dict(TINY_DECODER)
    elif arch == 'mobile_sam':
        # LoRA/Conv-LoRA on TinyViT's attention qkv, as the MobileSAM configs
        spec, targets = 'mobile_sam', dict(targets=DEFAULT_TINY_VIT_QKV)
        if depth is not None:
            raise SystemExit('--depth applies to SAM ViT archs only')
    else:
        spec = dict(SAM_ARCHS[arch])
    if depth is not None and depth != spec['depth']:
        spec['global_attn_indexes'] = scaled_global_indexes(
            spec['depth'], spec['global_attn_indexes'], depth)
        spec['depth'] = depth
    adapter = None
    if kind in ('lora', 'convlora'):
        adapter = dict(type='LoRA', rank=3, alpha=32, **targets)
    if kind == 'convlora':
        adapter.update(type='ConvLoRA', num_experts=8, dispatch=dispatch)
    elif kind == 'cad':
        adapter = dict(
            type='CAD',
            channels=out_channels,
            input_size=cad_size or size // 2)
    backbone = dict(
        type='SAMTinyViT' if arch == 'mobile_sam' else 'SAMViT',
        arch=spec,
        img_size=size,
        out_channels=out_channels,
        adapter=adapter,
        with_cp=with_cp)
    if cached:
        backbone['embedding_source'] = dict(type='CachedEmbeddings')
    head = dict(
        type='SAMMaskDecoderHead',
        num_classes=2,
        out_channels=1,
        img_size=size,
        embed_dim=out_channels,
        loss_decode=dict(type='StructureLoss'))
    if decoder is not None:
        head['decoder'] = decoder
    return dict(
        type='SAMSegmentor',
        backbone=backbone,
        decode_head=head,
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def build_model(cfg: dict, seed: int):
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    spread_adapters(model)
    return model


def _fake_batch(args, out_channels: int, device) -> dict:
    """Random images, blob GTs and fp16 embeddings (for the cached method),
    as the data preprocessor would hand them."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(args.seed)
    S, B = args.size, args.batch_size
    inputs = torch.randn(B, 3, S, S, generator=gen)
    samples = []
    for _ in range(B):
        low = torch.rand(1, 1, 8, 8, generator=gen)
        gt = F.interpolate(low, size=(S, S), mode='bilinear')[0] > 0.5
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt.long()))
        sample.set_metainfo(
            dict(img_shape=(S, S), pad_shape=(S, S), ori_shape=(S, S)))
        sample.sam_embedding = torch.randn(
            out_channels, S // 16, S // 16, generator=gen).half()
        samples.append(sample.to(device))
    return dict(inputs=inputs.to(device), data_samples=samples)


def _optim_wrapper(params, amp: str, device):
    """AdamW in the wrapper ``tools/train.py --amp`` would use."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from mmseg_convlora.engine.optimizers import CPUAmpOptimWrapper
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    if amp == 'none':
        return OptimWrapper(optimizer)
    wrapper = CPUAmpOptimWrapper if device.type == 'cpu' else AmpOptimWrapper
    return wrapper(
        optimizer=optimizer,
        dtype=AMP_DTYPES[amp],
        loss_scale='dynamic' if amp == 'fp16' else 1.0)


def build_steps(args, method: str, device):
    """(trainable parameter count, {mode: step}) of ``method``."""
    from mmseg_convlora.engine.hooks import FiniteGradientCheck
    base = _method_parts(method)[0]
    cfg = model_cfg(method, args.arch, args.size, args.depth, args.dispatch,
                    args.cad_size)
    model = build_model(cfg, args.seed).to(device)
    for adapter in model.backbone.adapters:
        if base == 'lora_merged':
            adapter.merge()
        elif base == 'lora_unfused':
            for layer in adapter.layers:
                layer.forward = functools.partial(three_step_lora, layer)
    params = [p for p in model.parameters() if p.requires_grad]
    data = _fake_batch(args, model.backbone.out_channels, device)

    def infer():
        model.eval()
        with torch.no_grad(), autocast(args.amp, device):
            model.test_step(data)

    steps = dict(infer=infer)
    if _BASE_METHODS[base][1] and params:
        wrapper = _optim_wrapper(params, args.amp, device)
        if method.endswith('+guard'):  # what NonFiniteLossHook adds
            wrapper.optimizer.register_step_pre_hook(
                FiniteGradientCheck(check=not hasattr(wrapper, 'loss_scaler')))
        steps['train'] = lambda: model.train().train_step(data, wrapper)
    return sum(p.numel() for p in params), steps


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        return next(
            int(line.split()[1]) for line in f if line.startswith(field + ':'))


def measure_memory(step, device) -> float:
    """Peak memory growth (MiB) of one ``step()``: CUDA peak allocated, or
    peak RSS (off Linux: the lifetime peak of this, fresh, process)."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak RSS mark, VmHWM
    except OSError:
        import resource
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == 'darwin' else 1024)
    before = _status_kib('VmRSS')
    step()
    return max(_status_kib('VmHWM') - before, 0) / 1024


def _child_memory(args, method: str, mode: str) -> float:
    """:func:`measure_memory` of (method, mode) in a fresh process."""
    cmd = [
        sys.executable, SCRIPT, *args.argv, '--child', method, '--child-mode',
        mode
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(_RESULT_TAG):
            return json.loads(line[len(_RESULT_TAG):])['memory_mib']
    raise RuntimeError(f'benchmark child for {method}/{mode} failed:\n'
                       f'{proc.stderr[-3000:]}')


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        'models',
        help='time, memory and parameters of every fine-tuning method',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--arch',
        default='vit_b',
        choices=['vit_b', 'vit_l', 'vit_h', 'mobile_sam', 'tiny'])
    parser.add_argument(
        '--size', type=int, default=1024, help='square input size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--cad-size',
        type=int,
        default=None,
        help="CAD's input size (default: half the input size)")
    parser.add_argument(
        '--depth',
        type=int,
        default=None,
        help="shrink the ViT to N blocks keeping SAM's ratio of global to "
        'windowed blocks')
    parser.add_argument(
        '--with-cp',
        action='store_true',
        help='add rows lora+cp and convlora+cp (activation checkpointing)')
    parser.add_argument(
        '--nonfinite-guard',
        action='store_true',
        help='add a row <method>+guard after every training method')
    parser.add_argument('--methods', nargs='+', default=list(MODEL_METHODS))
    parser.add_argument(
        '--measure',
        nargs='+',
        default=['time', 'memory'],
        choices=['time', 'memory'])
    parser.add_argument(
        '--memory-isolation',
        choices=['subprocess', 'none'],
        default='subprocess',
        help='measure memory in a fresh process per method and mode, or in '
        'this one (faster, peaks may mix)')
    parser.add_argument(
        '--dispatch', default='auto', choices=['auto', 'grouped', 'dense'])
    add_common_args(parser, steps=3, device=True)
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--child-mode', default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def _expand_methods(args) -> List[str]:
    """``--methods`` with the ``+cp`` and ``+guard`` rows of ``--with-cp``
    and ``--nonfinite-guard`` after their method."""
    methods = []
    for m in dict.fromkeys(args.methods):
        methods.append(m)
        if args.nonfinite_guard and m in _BASE_METHODS and \
                _BASE_METHODS[m][1]:
            methods.append(f'{m}+guard')
        if args.with_cp and m in ('lora', 'convlora'):
            methods.append(f'{m}+cp')
    for m in methods:
        _method_parts(m)
    return list(dict.fromkeys(methods))


def run(args: argparse.Namespace) -> List[dict]:
    """Benchmark the methods; print them with their ratios to LoRA.

    Returns:
        list[dict]: One row per method: ``method``, ``trainable``,
        ``train_s``, ``infer_s``, ``train_mem_mib``, ``infer_mem_mib`` (None
        where not measured) and their ratios ``*_vs_lora``.
    """
    setup(args)
    device = torch.device(args.device)
    args.argv = getattr(args, 'argv', [])
    if args.child is not None:  # one memory measurement, fresh process
        mem = measure_memory(
            build_steps(args, args.child, device)[1][args.child_mode], device)
        print(_RESULT_TAG + json.dumps(dict(memory_mib=mem)), flush=True)
        return [dict(method=args.child, memory_mib=mem)]

    keys = ('train_s', 'infer_s', 'train_mem_mib', 'infer_mem_mib')
    # the steps hold the models; a child process builds its own
    keep = 'time' in args.measure or args.memory_isolation == 'none'
    rows, steps = [], {}
    for m in _expand_methods(args):
        trainable, m_steps = build_steps(args, m, device)
        if m.endswith(('+cp', '+guard')):  # the same inference as m's
            del m_steps['infer']
        rows.append(dict(method=m, trainable=trainable, **dict.fromkeys(keys)))
        steps.update({
            (m, mode): m_steps[mode] if keep else None
            for mode in args.modes if mode in m_steps
        })
    by_method = {r['method']: r for r in rows}
    if 'memory' in args.measure:
        for (m, mode), step in steps.items():
            by_method[m][f'{mode}_mem_mib'] = measure_memory(
                step, device) if args.memory_isolation == 'none' \
                else _child_memory(args, m, mode)
    if 'time' in args.measure:
        seconds = interleaved_medians(steps, args, device)
        for (m, mode), value in seconds.items():
            by_method[m][f'{mode}_s'] = value
    add_ratios(rows, keys, 'method', 'lora')

    depth = 'full' if args.depth is None else args.depth
    memory = 'CUDA peak allocated' if device.type == 'cuda' \
        else 'peak RSS growth'
    title = (f'models: arch {args.arch} (depth {depth}), {args.size}x'
             f'{args.size}, batch {args.batch_size}, device {args.device}, '
             f'amp {args.amp}; memory: {memory} of one step; '
             f'{timing_note(args)}')
    columns = [
        ('method', 'method', ''),
        ('trainable params', 'trainable', ','),
        ('train step (s)', 'train_s', '.3f'),
        ('infer (s)', 'infer_s', '.3f'),
        ('train peak (MiB)', 'train_mem_mib', '.0f'),
        ('infer peak (MiB)', 'infer_mem_mib', '.0f'),
        ('step/LoRA', 'train_s_vs_lora', '.2f'),
        ('infer/LoRA', 'infer_s_vs_lora', '.2f'),
        ('train mem/LoRA', 'train_mem_mib_vs_lora', '.2f'),
    ]
    return report(title, columns, rows, args)
