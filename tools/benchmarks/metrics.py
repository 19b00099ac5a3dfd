"""``metrics``: images per second of every evaluation metric on random
probability maps (one ``process`` call per image, ``compute_metrics``
included; best of ``--repeats``)."""
import argparse
import time
from typing import List

import torch
import torch.nn.functional as F

from .common import add_common_args, report, setup

# SODMetric's components too, to show the expensive one
METRICS = dict(
    SODMetric=dict(type='SODMetric'),
    **{
        f'SODMetric[{m}]': dict(type='SODMetric', sod_metrics=[m])
        for m in ('Sm', 'Em', 'wFm', 'MAE')
    },
    BERMetric=dict(type='BERMetric'),
    BERPerImageMetric=dict(type='BERPerImageMetric'),
    BinarySegMetric=dict(type='BinarySegMetric'),
    MultiClassSegMetric=dict(type='MultiClassSegMetric'))


def _sample(prob, pred, gt) -> dict:
    return dict(
        seg_logits=dict(data=prob),
        pred_sem_seg=dict(data=pred),
        gt_sem_seg=dict(data=gt))


def random_samples(num_images: int, size: int, num_classes: int,
                   seed: int) -> dict:
    """Binary and multi-class data samples as mmseg's evaluator hands them
    to ``BaseMetric.process``; the binary GTs are blobs (upsampled noise)
    so that distance transforms and S-measure see real shapes."""
    gen = torch.Generator().manual_seed(seed)
    binary, multiclass = [], []
    for _ in range(num_images):
        low = torch.rand(
            1, 1, max(size // 32, 2), max(size // 32, 2), generator=gen)
        field = F.interpolate(
            low, size=(size, size), mode='bilinear', align_corners=False)[0]
        noise = torch.rand(1, size, size, generator=gen)
        prob = (0.7 * field + 0.3 * noise).clamp(0, 1)
        binary.append(_sample(prob, (prob > 0.5).long(), (field > 0.5).long()))
    gen.manual_seed(seed)
    for _ in range(num_images):
        scores = torch.rand(num_classes, size, size, generator=gen)
        gt = torch.randint(0, num_classes, (1, size, size), generator=gen)
        multiclass.append(_sample(scores, scores.argmax(0, keepdim=True), gt))
    return dict(binary=binary, multiclass=multiclass)


def _time_metric(metric, samples: List[dict], repeats: int) -> float:
    """Best-of-``repeats`` seconds of ``process`` over all samples plus
    ``compute_metrics``."""
    # an untimed image first: lazy imports and allocator warm-up
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
        description=__doc__)
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
        '--only', nargs='+', choices=list(METRICS), help='only these metrics')
    add_common_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Benchmark the metrics and print a table.

    Returns:
        list[dict]: One row per metric: ``name``, ``seconds``,
        ``images_per_s``.
    """
    from mmseg.registry import METRICS as REGISTRY
    setup(args)
    samples = random_samples(args.num_images, args.size, args.num_classes,
                             args.seed)
    rows = []
    for name, cfg in METRICS.items():
        if args.only and name not in args.only:
            continue
        metric = REGISTRY.build(cfg)
        metric.dataset_meta = dict(
            classes=[f'class{i}' for i in range(args.num_classes)])
        kind = 'multiclass' if name == 'MultiClassSegMetric' else 'binary'
        seconds = _time_metric(metric, samples[kind], args.repeats)
        rows.append(
            dict(
                name=name,
                seconds=seconds,
                images_per_s=args.num_images / seconds))
    title = (f'metrics: {args.num_images} image(s) of {args.size}x'
             f'{args.size}, torch {torch.__version__}, '
             f'{torch.get_num_threads()} threads')
    columns = [('metric', 'name', ''), ('images/s', 'images_per_s', '.2f'),
               ('ms/image', lambda r: 1000 * r['seconds'] / args.num_images,
                '.1f')]
    return report(title, columns, rows, args)
