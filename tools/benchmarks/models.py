"""``models``: training-step time, inference time, peak memory and
trainable parameters of every fine-tuning method side by side, with ratios
to LoRA (random weights, no checkpoint needed), e.g. ``python
tools/benchmark.py models --arch vit_b --size 1024 --depth 4 --device cpu``
or ``--device cuda --amp fp16``."""
import argparse
import contextlib
import functools
import gc
import json
import os.path as osp
import subprocess
import sys
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

from .common import (add_clock_argument, fmt, get_clock, interleaved_medians,
                     print_table, ratio)

# Memory is measured by re-running the tool in a fresh process per method.
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
    # not run by default: LoRA's training forward before the fused GEMM
    'lora_unfused': ('lora', True, False),
}
_RESULT_TAG = 'BENCH_MODELS_RESULT '


def scaled_global_indexes(full_depth: int, full_global: Sequence[int],
                          depth: int) -> List[int]:
    """Global-attention blocks of a ``depth``-block ViT that keeps SAM's
    ratio of global to windowed blocks (4 of 12 for ViT-B: 1/3) and its
    spacing (global blocks evenly spaced, the last block global).

    ``vit_b``: depth 12 -> [2, 5, 8, 11]; 6 -> [2, 5]; 4 -> [3]; 3 -> [2].
    """
    if depth >= full_depth:
        return list(full_global)
    n_global = max(1, round(depth * len(full_global) / full_depth))
    return [round((k + 1) * depth / n_global) - 1 for k in range(n_global)]


def three_step_lora(layer, x: torch.Tensor) -> torch.Tensor:
    """``W x + b + s B A x`` as three products: ``LoRALinear``'s training
    forward before it used the fused GEMM (the ``lora_unfused`` row)."""
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


def _model_cfg(args, method: str) -> dict:
    """A SAMSegmentor config with random weights for ``method``."""
    from mmseg_convlora.models.backbones import DEFAULT_TINY_VIT_QKV
    from mmseg_convlora.models.utils import SAM_ARCHS
    from tools.make_demo_data import TINY_DECODER, TINY_EMBED_DIM, TINY_ENCODER
    base, with_cp = _method_parts(method)
    kind, _, cached = _BASE_METHODS[base]
    targets = {}
    if args.arch == 'tiny':
        spec = dict(TINY_ENCODER)
        out_channels, decoder = TINY_EMBED_DIM, dict(TINY_DECODER)
    elif args.arch == 'mobile_sam':
        # TinyViT has no depth knob; LoRA/Conv-LoRA on its attention qkv
        # layers, as configs/*/kvasir-cvc_mobile-sam.py
        spec, targets = 'mobile_sam', dict(targets=DEFAULT_TINY_VIT_QKV)
        out_channels, decoder = 256, None
        if args.depth is not None:
            raise SystemExit('--depth applies to SAM ViT archs only')
    else:
        spec = dict(SAM_ARCHS[args.arch])
        out_channels, decoder = 256, None
    if (args.depth is not None and isinstance(spec, dict)
            and args.depth != spec['depth']):
        spec['global_attn_indexes'] = scaled_global_indexes(
            spec['depth'], spec['global_attn_indexes'], args.depth)
        spec['depth'] = args.depth
    adapter = {
        None:
        None,
        'lora':
        dict(type='LoRA', rank=3, alpha=32, **targets),
        'convlora':
        dict(
            type='ConvLoRA',
            rank=3,
            alpha=32,
            num_experts=8,
            dispatch=args.dispatch,
            **targets),
        'cad':
        dict(
            type='CAD',
            channels=out_channels,
            input_size=args.cad_size or args.size // 2),
    }[kind]
    backbone = dict(
        type='SAMTinyViT' if args.arch == 'mobile_sam' else 'SAMViT',
        arch=spec,
        img_size=args.size,
        out_channels=out_channels,
        adapter=adapter,
        with_cp=with_cp)
    if cached:
        backbone['embedding_source'] = dict(type='CachedEmbeddings')
    head = dict(
        type='SAMMaskDecoderHead',
        num_classes=2,
        out_channels=1,
        img_size=args.size,
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


def _fake_batch(args, out_channels: int, device):
    """Normalised random images, blob GTs and (for the cached method)
    random fp16 embeddings, as the data preprocessor would hand them."""
    import torch.nn.functional as F
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(args.seed)
    S, B = args.size, args.batch_size
    inputs = torch.randn(B, 3, S, S, generator=gen)
    samples = []
    for _ in range(B):
        low = torch.rand(1, 1, 8, 8, generator=gen)
        gt = (F.interpolate(
            low, size=(S, S), mode='bilinear', align_corners=False)[0]
              > 0.5).long()
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(
            dict(img_shape=(S, S), pad_shape=(S, S), ori_shape=(S, S)))
        sample.set_field(
            torch.randn(out_channels, S // 16, S // 16, generator=gen).half(),
            'sam_embedding')
        samples.append(sample.to(device))
    return inputs.to(device), samples


class _Case:
    """One benchmarked model with its optimizer and batch."""

    def __init__(self, args, method: str, device):
        from mmengine.config import ConfigDict
        from mmseg.registry import MODELS
        base, self.with_cp = _method_parts(method)
        self.method, self.base = method, base
        self.trains = _BASE_METHODS[base][1]
        torch.manual_seed(args.seed)
        self.model = MODELS.build(ConfigDict(_model_cfg(args,
                                                        method))).to(device)
        backbone = self.model.backbone
        with torch.no_grad():  # spread Conv-LoRA's eval routing too
            for name, p in self.model.named_parameters():
                if name.endswith('w_gate'):
                    p.normal_(0, 1)
        if base == 'lora_merged':
            for adapter in backbone.adapters:
                adapter.merge()
        if base == 'lora_unfused':
            for adapter in backbone.adapters:
                for layer in adapter.layers:
                    layer.forward = functools.partial(three_step_lora, layer)
        self.trainable = [
            p for p in self.model.parameters() if p.requires_grad
        ]
        self.num_trainable = sum(p.numel() for p in self.trainable)
        self.inputs, self.samples = _fake_batch(args, backbone.out_channels,
                                                device)
        self.device = device
        self.amp = args.amp
        self.clock = get_clock(args.clock)
        self.optimizer = torch.optim.AdamW(self.trainable, lr=1e-6) \
            if self.trains and self.trainable else None
        self.scaler = torch.amp.GradScaler(device.type) \
            if args.amp == 'fp16' else None
        if method.endswith('+guard') and self.optimizer is not None:
            # what NonFiniteLossHook adds to every optimizer step
            from mmseg_convlora.engine.hooks import FiniteGradientCheck
            self.optimizer.register_step_pre_hook(
                FiniteGradientCheck(check=self.scaler is None))

    def autocast(self):
        if self.amp == 'none':
            return contextlib.nullcontext()
        dtype = torch.float16 if self.amp == 'fp16' else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.model.loss(self.inputs, self.samples)
            loss, _ = self.model.parse_losses(losses)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()

    def infer_step(self) -> None:
        self.model.eval()
        with torch.no_grad(), self.autocast():
            self.model.predict(self.inputs, self.samples)

    def run(self, mode: str) -> float:
        """Seconds of one training step or one inference."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        start = self.clock()
        self.train_step() if mode == 'train' else self.infer_step()
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return self.clock() - start


def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _measure_memory(case: _Case, mode: str) -> float:
    """Peak memory growth (MiB) of one step: CUDA peak allocated above what
    was allocated before; on the CPU the peak RSS above the RSS before."""
    gc.collect()
    if case.device.type == 'cuda':
        torch.cuda.synchronize(case.device)
        torch.cuda.reset_peak_memory_stats(case.device)
        before = torch.cuda.memory_allocated(case.device)
        case.run(mode)
        return (torch.cuda.max_memory_allocated(case.device) - before) / 2**20
    import resource
    reset = _reset_peak_rss()
    before = _proc_status_kib('VmRSS')
    if not reset or before is None:  # not Linux: lifetime peak, fresh child
        before = before or 0
        case.run(mode)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == 'darwin':
            peak //= 1024
        return max(peak - before, 0) / 1024
    case.run(mode)
    return max(_proc_status_kib('VmHWM') - before, 0) / 1024


def _child_memory(args, method: str, mode: str) -> Optional[float]:
    """Memory of one (method, mode) measured in a fresh process."""
    cmd = [sys.executable, SCRIPT] + list(
        args.argv) + ['--child', method, '--child-mode', mode]
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
        description='Training step time (forward + backward + AdamW step, '
        'median of --steps after --warmup, all methods interleaved so that '
        'load changes hit them alike), inference time (eval, no_grad, '
        'predict), peak memory of one step (CUDA: max_memory_allocated; '
        'CPU: peak RSS growth, each method and mode in a fresh process) and '
        'trainable parameters, with random weights. Methods: ' +
        ', '.join(MODEL_METHODS) + '; "+cp" adds activation '
        'checkpointing (e.g. lora+cp); lora_unfused (on request) is LoRA '
        'with its training forward as three products, as before the fused '
        'GEMM.')
    parser.add_argument(
        '--arch',
        default='vit_b',
        choices=['vit_b', 'vit_l', 'vit_h', 'mobile_sam', 'tiny'],
        help="SAM's ViT, MobileSAM's TinyViT or a tiny ViT "
        '(tests)')
    parser.add_argument(
        '--size', type=int, default=1024, help='square input size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--cad-size',
        type=int,
        default=None,
        help="CAD's input size (default: half the input size, as the SAM "
        'ViT configs; the MobileSAM configs use the input size)')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--depth',
        type=int,
        default=None,
        help='shrink the ViT to N blocks keeping SAM\'s ratio of global to '
        'windowed blocks (quick CPU runs)')
    parser.add_argument(
        '--amp',
        choices=['none', 'fp16', 'bf16'],
        default='none',
        help='autocast dtype (fp16 with loss scaling)')
    parser.add_argument(
        '--with-cp',
        action='store_true',
        help='also run LoRA and Conv-LoRA with activation checkpointing '
        '(rows lora+cp, convlora+cp)')
    parser.add_argument(
        '--nonfinite-guard',
        action='store_true',
        help='also train every method with the non-finite gradient check '
        'of NonFiniteLossHook (rows <method>+guard, next to the method)')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=list(MODEL_METHODS),
        help='methods (default: all)')
    parser.add_argument(
        '--measure',
        nargs='+',
        default=['time', 'memory'],
        choices=['time', 'memory'])
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['train', 'infer'],
        choices=['train', 'infer'])
    add_clock_argument(parser)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--steps',
        type=int,
        default=3,
        help='timed steps per method and mode (median)')
    parser.add_argument(
        '--memory-isolation',
        choices=['subprocess', 'none'],
        default='subprocess',
        help='measure memory in a fresh process per method and mode '
        '(default) or in this one (faster, peaks may mix)')
    parser.add_argument(
        '--dispatch',
        default='auto',
        choices=['auto', 'grouped', 'dense'],
        help='Conv-LoRA dispatch')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (CPU)')
    parser.add_argument('--json', default=None, help='also write rows here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--child-mode', default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Benchmark the methods; print a table with the ratios to LoRA.

    Returns:
        list[dict]: One row per method: ``method``, ``trainable``,
        ``train_s``, ``infer_s``, ``train_mem_mib``, ``infer_mem_mib`` (None
        where not measured) and the ratios to LoRA.
    """
    from mmengine.registry import init_default_scope

    import mmseg_convlora  # noqa: F401  (registers the models)
    init_default_scope('mmseg')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if not hasattr(args, 'argv'):
        args.argv = []

    if args.child is not None:  # one memory measurement, fresh process
        case = _Case(args, args.child, device)
        mem = _measure_memory(case, args.child_mode)
        print(_RESULT_TAG + json.dumps(dict(memory_mib=mem)), flush=True)
        return [dict(method=args.child, memory_mib=mem)]

    methods = list(dict.fromkeys(args.methods))
    if args.with_cp:
        for base in ('lora', 'convlora'):
            if base in methods and f'{base}+cp' not in methods:
                methods.insert(methods.index(base) + 1, f'{base}+cp')
    if args.nonfinite_guard:
        for base in [
                m for m in methods
                if m in _BASE_METHODS and _BASE_METHODS[m][1]
        ]:
            if f'{base}+guard' not in methods:
                methods.insert(methods.index(base) + 1, f'{base}+guard')
    for m in methods:
        _method_parts(m)

    def wants(method, mode):
        base, with_cp = _method_parts(method)
        if mode == 'train':
            return _BASE_METHODS[base][1]
        # checkpointing and the guard change nothing in inference
        return not with_cp and not method.endswith('+guard')

    rows = {
        m:
        dict(
            method=m,
            trainable=None,
            train_s=None,
            infer_s=None,
            train_mem_mib=None,
            infer_mem_mib=None)
        for m in methods
    }

    # Parameters (and the models for timing): one model per method.
    cases = {}
    for m in methods:
        case = _Case(args, m, device)
        rows[m]['trainable'] = case.num_trainable
        if 'time' in args.measure or args.memory_isolation == 'none':
            cases[m] = case
        else:
            del case
    if 'memory' in args.measure:
        for m in methods:
            for mode in args.modes:
                if not wants(m, mode):
                    continue
                if args.memory_isolation == 'subprocess':
                    mem = _child_memory(args, m, mode)
                else:
                    mem = _measure_memory(cases[m], mode)
                rows[m][f'{mode}_mem_mib'] = mem
    if 'time' in args.measure:
        jobs = {
            (m, mode): (lambda m=m, mode=mode: cases[m].run(mode))
            for mode in args.modes
            for m in methods if wants(m, mode)
        }
        medians = interleaved_medians(jobs, args.warmup, args.steps)
        for (m, mode), seconds in medians.items():
            rows[m][f'{mode}_s'] = seconds
    cases.clear()

    lora = rows.get('lora', {})
    for row in rows.values():
        for key in ('train_s', 'infer_s', 'train_mem_mib', 'infer_mem_mib'):
            row[f'{key}_vs_lora'] = ratio(row[key], lora.get(key))
    out = list(rows.values())

    depth = args.depth if args.depth is not None else 'full'
    print(f'models: arch {args.arch} (depth {depth}), {args.size}x'
          f'{args.size}, batch {args.batch_size}, device {args.device}, amp '
          f'{args.amp}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads; {args.clock} time: median of '
          f'{args.steps} step(s) after {args.warmup} warm-up; memory: ' +
          ('CUDA peak allocated' if device.type ==
           'cuda' else 'peak RSS growth') + ' of one step')
    print_table([
        'method', 'trainable params', 'train step (s)', 'infer (s)',
        'train peak (MiB)', 'infer peak (MiB)', 'step/LoRA', 'infer/LoRA',
        'train mem/LoRA'
    ], [[
        r['method'], f"{r['trainable']:,}",
        fmt(r['train_s']),
        fmt(r['infer_s']),
        fmt(r['train_mem_mib'], '.0f'),
        fmt(r['infer_mem_mib'], '.0f'),
        fmt(r['train_s_vs_lora'], '.2f'),
        fmt(r['infer_s_vs_lora'], '.2f'),
        fmt(r['train_mem_mib_vs_lora'], '.2f')
    ] for r in out])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    rows=out,
                    args={
                        k: v
                        for k, v in vars(args).items()
                        if k not in ('func', 'argv')
                    }),
                f,
                indent=1)
    return out
