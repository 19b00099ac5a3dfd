"""``metrics``: images per second of every evaluation metric on random
probability maps (one ``process`` call per image, ``compute_metrics``
included), e.g. ``python tools/benchmark.py metrics --num-images 20 --size
1024``."""
import argparse
import time
from typing import Dict, List

import torch

from .common import print_table


def _random_binary_samples(num_images: int, size: int,
                           seed: int) -> List[dict]:
    """Smooth random probability maps with blob-shaped GTs, as data samples
    in the form mmseg's evaluator hands to ``BaseMetric.process``."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_images):
        # Low-resolution noise upsampled: blobs rather than salt-and-pepper,
        # so distance transforms and S-measure quadrants see real shapes.
        low = torch.rand(
            1, 1, max(size // 32, 2), max(size // 32, 2), generator=gen)
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
        'SODMetric':
        dict(cfg=dict(type='SODMetric'), kind='binary'),
        'SODMetric[Sm]':
        dict(cfg=dict(type='SODMetric', sod_metrics=['Sm']), kind='binary'),
        'SODMetric[Em]':
        dict(cfg=dict(type='SODMetric', sod_metrics=['Em']), kind='binary'),
        'SODMetric[wFm]':
        dict(cfg=dict(type='SODMetric', sod_metrics=['wFm']), kind='binary'),
        'SODMetric[MAE]':
        dict(cfg=dict(type='SODMetric', sod_metrics=['MAE']), kind='binary'),
        'BERMetric':
        dict(cfg=dict(type='BERMetric'), kind='binary'),
        'BERPerImageMetric':
        dict(cfg=dict(type='BERPerImageMetric'), kind='binary'),
        'BinarySegMetric':
        dict(cfg=dict(type='BinarySegMetric'), kind='binary'),
        'MultiClassSegMetric':
        dict(cfg=dict(type='MultiClassSegMetric'), kind='multiclass'),
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


def add_parser(subparsers) -> None:
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
        '--num-classes',
        type=int,
        default=3,
        help='classes of the multi-class case (Trans10K v1 has 3)')
    parser.add_argument(
        '--repeats', type=int, default=1, help='runs per metric, best kept')
    parser.add_argument(
        '--only',
        nargs='+',
        default=None,
        help='benchmark only these metric names')
    parser.add_argument('--seed', type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Benchmark the metrics and print a table.

    Returns:
        list[dict]: One row per metric: ``name``, ``seconds``,
        ``images_per_s``.
    """
    from mmseg.registry import METRICS

    import mmseg_convlora  # noqa: F401  (registers the metrics)

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
                images_per_s=len(samples) /
                seconds if seconds else float('inf')))
    print(f'metrics: {args.num_images} image(s) of {args.size}x{args.size}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    print_table(['metric', 'images/s', 'ms/image'], [[
        r['name'], f"{r['images_per_s']:.2f}",
        f"{1000 * r['seconds'] / args.num_images:.1f}"
    ] for r in rows])
    return rows
