# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Throughput benchmarks of the plugin.

Subcommands (one function each, ``run_<name>``):

* ``metrics``: images per second of every evaluation metric on random
  probability maps, e.g. ``python tools/benchmark.py metrics --num-images 20
  --size 1024``.
* ``models``: training-step time, inference time, peak memory and trainable
  parameters of decoder-only, LoRA, merged LoRA, Conv-LoRA, CAD and CAD with
  cached embeddings side by side (random weights, no checkpoint needed),
  with ratios to LoRA, e.g. ``python tools/benchmark.py models --arch vit_b
  --size 1024 --depth 4 --device cpu`` or ``--device cuda --amp fp16``.

A new benchmark is a new ``add_<name>_parser`` / ``run_<name>`` pair
registered in :func:`build_parser`.
"""
import argparse
import contextlib
import gc
import json
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch


def _print_table(header: Sequence[str], rows: List[Sequence]) -> None:
    """Print rows as a table (prettytable when available)."""
    try:
        from prettytable import PrettyTable
    except ImportError:  # pragma: no cover - prettytable ships with mmseg
        print(' | '.join(header))
        for row in rows:
            print(' | '.join(str(v) for v in row))
        return
    table = PrettyTable(list(header))
    for row in rows:
        table.add_row(list(row))
    print(table.get_string())


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
def _random_binary_samples(num_images: int, size: int,
                           seed: int) -> List[dict]:
    """Smooth random probability maps with blob-shaped GTs, as data samples
    in the form mmseg's evaluator hands to ``BaseMetric.process``."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_images):
        # Low-resolution noise upsampled: blobs rather than salt-and-pepper,
        # so distance transforms and S-measure quadrants see real shapes.
        low = torch.rand(1, 1, max(size // 32, 2), max(size // 32, 2),
                         generator=gen)
        gt_field = torch.nn.functional.interpolate(
            low, size=(size, size), mode='bilinear', align_corners=False)[0]
        gt = (gt_field > 0.5).long()
        noise = torch.rand(1, size, size, generator=gen)
        prob = (0.7 * gt_field + 0.3 * noise).clamp(0, 1)
        samples.append(
            dict(
                seg_logits=dict(data=prob),
                pred_sem_seg=dict(data=(prob > 0.5).long()),
                gt_sem_seg=dict(data=gt)))
    return samples


def _random_multiclass_samples(num_images: int, size: int, num_classes: int,
                               seed: int) -> List[dict]:
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_images):
        scores = torch.rand(num_classes, size, size, generator=gen)
        gt = torch.randint(0, num_classes, (1, size, size), generator=gen)
        samples.append(
            dict(
                seg_logits=dict(data=scores),
                pred_sem_seg=dict(data=scores.argmax(0, keepdim=True)),
                gt_sem_seg=dict(data=gt)))
    return samples


def _metric_cases() -> Dict[str, dict]:
    """Benchmarked metrics: name -> (config, kind). Components of
    ``SODMetric`` are listed too, so the expensive one is visible."""
    return {
        'SODMetric': dict(cfg=dict(type='SODMetric'), kind='binary'),
        'SODMetric[Sm]': dict(
            cfg=dict(type='SODMetric', sod_metrics=['Sm']), kind='binary'),
        'SODMetric[Em]': dict(
            cfg=dict(type='SODMetric', sod_metrics=['Em']), kind='binary'),
        'SODMetric[wFm]': dict(
            cfg=dict(type='SODMetric', sod_metrics=['wFm']), kind='binary'),
        'SODMetric[MAE]': dict(
            cfg=dict(type='SODMetric', sod_metrics=['MAE']), kind='binary'),
        'BERMetric': dict(cfg=dict(type='BERMetric'), kind='binary'),
        'BERPerImageMetric': dict(
            cfg=dict(type='BERPerImageMetric'), kind='binary'),
        'BinarySegMetric': dict(
            cfg=dict(type='BinarySegMetric'), kind='binary'),
        'MultiClassSegMetric': dict(
            cfg=dict(type='MultiClassSegMetric'), kind='multiclass'),
    }


def _time_metric(metric, samples: List[dict], repeats: int) -> float:
    """Best-of-``repeats`` seconds for ``process`` over all samples plus
    ``compute_metrics``."""
    # One untimed image first: lazy imports and allocator warm-up would
    # otherwise be charged to whichever metric runs first.
    metric.process({}, samples[:1])
    best = float('inf')
    for _ in range(repeats):
        metric.results.clear()
        start = time.perf_counter()
        for sample in samples:
            metric.process({}, [sample])
        metric.compute_metrics(metric.results)
        best = min(best, time.perf_counter() - start)
    metric.results.clear()
    return best


def add_metrics_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        'metrics',
        help='images/s of each evaluation metric on random maps',
        description='Images per second of every metric of '
        'mmseg_convlora.evaluation.metrics on random probability maps '
        '(one process() call per image, compute_metrics included).')
    parser.add_argument(
        '--num-images', type=int, default=10, help='images per run')
    parser.add_argument(
        '--size', type=int, default=1024, help='square map side in pixels')
    parser.add_argument(
        '--num-classes', type=int, default=3,
        help='classes of the multi-class case (Trans10K v1 has 3)')
    parser.add_argument(
        '--repeats', type=int, default=1, help='runs per metric, best kept')
    parser.add_argument(
        '--only', nargs='+', default=None,
        help='benchmark only these metric names')
    parser.add_argument('--seed', type=int, default=0)
    parser.set_defaults(func=run_metrics)


def run_metrics(args: argparse.Namespace) -> List[dict]:
    """Benchmark the metrics and print a table.

    Returns:
        list[dict]: One row per metric: ``name``, ``seconds``,
        ``images_per_s``.
    """
    import mmseg_convlora  # noqa: F401  (registers the metrics)
    from mmseg.registry import METRICS

    cases = _metric_cases()
    if args.only:
        unknown = set(args.only) - set(cases)
        if unknown:
            raise SystemExit(f'unknown metrics {sorted(unknown)}; '
                             f'choose from {sorted(cases)}')
        cases = {k: v for k, v in cases.items() if k in args.only}
    binary = _random_binary_samples(args.num_images, args.size, args.seed)
    multiclass = _random_multiclass_samples(args.num_images, args.size,
                                            args.num_classes, args.seed)
    rows = []
    for name, case in cases.items():
        metric = METRICS.build(case['cfg'])
        metric.dataset_meta = dict(
            classes=[f'class{i}' for i in range(args.num_classes)])
        samples = binary if case['kind'] == 'binary' else multiclass
        seconds = _time_metric(metric, samples, args.repeats)
        rows.append(
            dict(
                name=name,
                seconds=seconds,
                images_per_s=len(samples) / seconds if seconds else
                float('inf')))
    print(f'metrics: {args.num_images} image(s) of {args.size}x{args.size}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    _print_table(['metric', 'images/s', 'ms/image'],
                 [[r['name'], f"{r['images_per_s']:.2f}",
                   f"{1000 * r['seconds'] / args.num_images:.1f}"]
                  for r in rows])
    return rows


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
SCRIPT = osp.abspath(__file__)
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


def _method_parts(name: str):
    base, _, suffix = name.partition('+')
    if base not in _BASE_METHODS or suffix not in ('', 'cp'):
        raise SystemExit(f'unknown method {name!r}; choose from '
                         f'{list(MODEL_METHODS)}, optionally with "+cp" '
                         '(activation checkpointing), e.g. lora+cp')
    return base, suffix == 'cp'


def _model_cfg(args, method: str) -> dict:
    """A SAMSegmentor config with random weights for ``method``."""
    from mmseg_convlora.models.utils import SAM_ARCHS
    from mmseg_convlora.utils import (TINY_DECODER, TINY_EMBED_DIM,
                                      TINY_ENCODER)
    base, with_cp = _method_parts(method)
    kind, _, cached = _BASE_METHODS[base]
    if args.arch == 'tiny':
        spec = dict(TINY_ENCODER)
        out_channels, decoder = TINY_EMBED_DIM, dict(TINY_DECODER)
    else:
        spec = dict(SAM_ARCHS[args.arch])
        out_channels, decoder = 256, None
    if args.depth is not None and args.depth != spec['depth']:
        spec['global_attn_indexes'] = scaled_global_indexes(
            spec['depth'], spec['global_attn_indexes'], args.depth)
        spec['depth'] = args.depth
    adapter = {
        None: None,
        'lora': dict(type='LoRA', rank=3, alpha=32),
        'convlora': dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8,
                         dispatch=args.dispatch),
        'cad': dict(type='CAD', channels=out_channels,
                    input_size=args.size // 2),
    }[kind]
    backbone = dict(type='SAMViT', arch=spec, img_size=args.size,
                    out_channels=out_channels, adapter=adapter,
                    with_cp=with_cp)
    if cached:
        backbone['embedding_cache'] = dict(dir=None)
    head = dict(type='SAMMaskDecoderHead', num_classes=2, out_channels=1,
                img_size=args.size, embed_dim=out_channels,
                loss_decode=dict(type='StructureLoss'))
    if decoder is not None:
        head['decoder'] = decoder
    return dict(type='SAMSegmentor', backbone=backbone, decode_head=head,
                train_cfg=dict(), test_cfg=dict(mode='whole'))


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
        gt = (F.interpolate(low, size=(S, S), mode='bilinear',
                            align_corners=False)[0] > 0.5).long()
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(dict(img_shape=(S, S), pad_shape=(S, S),
                                 ori_shape=(S, S)))
        sample.set_field(
            torch.randn(out_channels, S // 16, S // 16,
                        generator=gen).half(), 'sam_embedding')
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
        self.model = MODELS.build(ConfigDict(_model_cfg(args, method))).to(
            device)
        backbone = self.model.backbone
        with torch.no_grad():  # spread Conv-LoRA's eval routing too
            for name, p in self.model.named_parameters():
                if name.endswith('w_gate'):
                    p.normal_(0, 1)
        if base == 'lora_merged':
            for adapter in backbone.adapters:
                adapter.merge()
        self.trainable = [p for p in self.model.parameters()
                          if p.requires_grad]
        self.num_trainable = sum(p.numel() for p in self.trainable)
        self.inputs, self.samples = _fake_batch(
            args, backbone.out_channels, device)
        self.device = device
        self.amp = args.amp
        self.optimizer = torch.optim.AdamW(self.trainable, lr=1e-6) \
            if self.trains and self.trainable else None
        self.scaler = torch.amp.GradScaler(device.type) \
            if args.amp == 'fp16' else None

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
        start = time.perf_counter()
        self.train_step() if mode == 'train' else self.infer_step()
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


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
    cmd = [sys.executable, SCRIPT] + list(args.argv) + [
        '--child', method, '--child-mode', mode]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(_RESULT_TAG):
            return json.loads(line[len(_RESULT_TAG):])['memory_mib']
    raise RuntimeError(f'benchmark child for {method}/{mode} failed:\n'
                       f'{proc.stderr[-3000:]}')


def add_models_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        'models',
        help='time, memory and parameters of every fine-tuning method',
        description='Training step time (forward + backward + AdamW step, '
        'median of --steps after --warmup, all methods interleaved so that '
        'load changes hit them alike), inference time (eval, no_grad, '
        'predict), peak memory of one step (CUDA: max_memory_allocated; '
        'CPU: peak RSS growth, each method and mode in a fresh process) and '
        'trainable parameters, with random weights. Methods: '
        + ', '.join(MODEL_METHODS) + '; "+cp" adds activation '
        'checkpointing (e.g. lora+cp).')
    parser.add_argument('--arch', default='vit_b',
                        choices=['vit_b', 'vit_l', 'vit_h', 'tiny'])
    parser.add_argument('--size', type=int, default=1024,
                        help='square input size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--depth', type=int, default=None,
        help='shrink the ViT to N blocks keeping SAM\'s ratio of global to '
        'windowed blocks (quick CPU runs)')
    parser.add_argument('--amp', choices=['none', 'fp16', 'bf16'],
                        default='none',
                        help='autocast dtype (fp16 with loss scaling)')
    parser.add_argument(
        '--with-cp', action='store_true',
        help='also run LoRA and Conv-LoRA with activation checkpointing '
        '(rows lora+cp, convlora+cp)')
    parser.add_argument('--methods', nargs='+', default=list(MODEL_METHODS),
                        help='methods (default: all)')
    parser.add_argument('--measure', nargs='+', default=['time', 'memory'],
                        choices=['time', 'memory'])
    parser.add_argument('--modes', nargs='+', default=['train', 'infer'],
                        choices=['train', 'infer'])
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--steps', type=int, default=3,
                        help='timed steps per method and mode (median)')
    parser.add_argument(
        '--memory-isolation', choices=['subprocess', 'none'],
        default='subprocess',
        help='measure memory in a fresh process per method and mode '
        '(default) or in this one (faster, peaks may mix)')
    parser.add_argument('--dispatch', default='auto',
                        choices=['auto', 'grouped', 'dense'],
                        help='Conv-LoRA dispatch')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (CPU)')
    parser.add_argument('--json', default=None, help='also write rows here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--child-mode', default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run_models)


def _ratio(a, b) -> Optional[float]:
    return a / b if a is not None and b else None


def _fmt(v, spec='.3f') -> str:
    return '-' if v is None else format(v, spec)


def _targets(rows: Dict[str, dict]) -> List[tuple]:
    """The issue's targets: (name, value, bound, ok)."""
    def get(method, key):
        return rows.get(method, {}).get(key)

    checks = [
        ('Conv-LoRA step / LoRA step', _ratio(get('convlora', 'train_s'),
                                              get('lora', 'train_s')),
         '<= 1.10', lambda v: v <= 1.10),
        ('LoRA+cp peak mem / LoRA peak mem',
         _ratio(get('lora+cp', 'train_mem_mib'),
                get('lora', 'train_mem_mib')), '<= 0.60',
         lambda v: v <= 0.60),
        ('Conv-LoRA+cp peak mem / Conv-LoRA peak mem',
         _ratio(get('convlora+cp', 'train_mem_mib'),
                get('convlora', 'train_mem_mib')), '<= 0.60',
         lambda v: v <= 0.60),
        ('CAD peak mem / LoRA peak mem', _ratio(
            get('cad', 'train_mem_mib'), get('lora', 'train_mem_mib')),
         '<= 0.50', lambda v: v <= 0.50),
        ('CAD step / CAD-cached step', _ratio(get('cad', 'train_s'),
                                              get('cad_cached', 'train_s')),
         '>= 10', lambda v: v >= 10),
        ('merged-LoRA infer / frozen-SAM infer',
         _ratio(get('lora_merged', 'infer_s'),
                get('decoder_only', 'infer_s')), '<= 1.02',
         lambda v: v <= 1.02),
    ]
    return [(name, v, bound, None if v is None else ok(v))
            for name, v, bound, ok in checks]


def run_models(args: argparse.Namespace) -> List[dict]:
    """Benchmark the methods; print a table, ratios and the targets.

    Returns:
        list[dict]: One row per method: ``method``, ``trainable``,
        ``train_s``, ``infer_s``, ``train_mem_mib``, ``infer_mem_mib`` (None
        where not measured) and the ratios to LoRA.
    """
    import mmseg_convlora  # noqa: F401  (registers the models)
    from mmengine.registry import init_default_scope
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
    for m in methods:
        _method_parts(m)

    def wants(method, mode):
        base, with_cp = _method_parts(method)
        if mode == 'train':
            return _BASE_METHODS[base][1]
        return not with_cp  # checkpointing changes nothing in inference

    rows = {m: dict(method=m, trainable=None, train_s=None, infer_s=None,
                    train_mem_mib=None, infer_mem_mib=None)
            for m in methods}

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
        jobs = [(m, mode) for mode in args.modes for m in methods
                if wants(m, mode)]
        times = {job: [] for job in jobs}
        for step in range(args.warmup + args.steps):
            for m, mode in jobs:  # interleaved: load drift hits all alike
                seconds = cases[m].run(mode)
                if step >= args.warmup:
                    times[(m, mode)].append(seconds)
        for (m, mode), values in times.items():
            rows[m][f'{mode}_s'] = statistics.median(values)
    cases.clear()

    lora = rows.get('lora', {})
    for row in rows.values():
        for key in ('train_s', 'infer_s', 'train_mem_mib', 'infer_mem_mib'):
            row[f'{key}_vs_lora'] = _ratio(row[key], lora.get(key))
    out = list(rows.values())

    depth = args.depth if args.depth is not None else 'full'
    print(f'models: arch {args.arch} (depth {depth}), {args.size}x'
          f'{args.size}, batch {args.batch_size}, device {args.device}, amp '
          f'{args.amp}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads; time: median of '
          f'{args.steps} step(s) after {args.warmup} warm-up; memory: '
          + ('CUDA peak allocated' if device.type == 'cuda' else
             'peak RSS growth') + ' of one step')
    _print_table(
        ['method', 'trainable params', 'train step (s)', 'infer (s)',
         'train peak (MiB)', 'infer peak (MiB)', 'step/LoRA', 'infer/LoRA',
         'train mem/LoRA'],
        [[r['method'], f"{r['trainable']:,}", _fmt(r['train_s']),
          _fmt(r['infer_s']), _fmt(r['train_mem_mib'], '.0f'),
          _fmt(r['infer_mem_mib'], '.0f'), _fmt(r['train_s_vs_lora'], '.2f'),
          _fmt(r['infer_s_vs_lora'], '.2f'),
          _fmt(r['train_mem_mib_vs_lora'], '.2f')] for r in out])
    targets = _targets(rows)
    shown = [t for t in targets if t[1] is not None]
    if shown:
        print('targets:')
        for name, value, bound, ok in shown:
            print(f'  {name}: {value:.3f} (target {bound}) '
                  f'{"ok" if ok else "MISSED"}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(rows=out, targets=[
                dict(name=n, value=v, bound=b, ok=o)
                for n, v, b, o in targets], args={
                    k: v for k, v in vars(args).items()
                    if k not in ('func', 'argv')}), f, indent=1)
    return out


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------
_SUBCOMMANDS: List[Callable] = [add_metrics_parser, add_models_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='mmseg-convlora benchmarks')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for add_parser in _SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # subcommands that re-run themselves in children
    return args.func(args)


if __name__ == '__main__':
    main(sys.argv[1:])
