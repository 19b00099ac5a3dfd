"""One table of the newest ``tools/test.py`` results under several work
dirs; see docs/train_test.md."""
import argparse
import csv
import glob
import io
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

from mmengine.fileio import put_text

# what mmengine's test log adds besides the metrics
NOT_METRICS = ('time', 'data_time', 'memory', 'iter', 'epoch', 'step', 'lr')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        'work_dirs',
        nargs='+',
        metavar='WORK_DIR',
        help='work dirs of tools/test.py (or above them), or globs')
    parser.add_argument(
        '--metrics',
        nargs='+',
        help='metrics to show, in this order (default: all)')
    parser.add_argument(
        '--labels',
        nargs='+',
        help='one per work dir (default: where their paths differ)')
    parser.add_argument(
        '--layout',
        choices=['long', 'wide'],
        default='long',
        help='long: a row per test set and run; wide: a row per run')
    parser.add_argument(
        '--format', choices=['markdown', 'csv'], default='markdown')
    parser.add_argument(
        '--precision', type=int, default=3, help='decimals (default 3)')
    parser.add_argument('--out', help='write the table to this file too')
    return parser.parse_args(argv)


def expand(patterns: List[str]) -> List[str]:
    """Work dirs of the arguments, globs expanded, in the order given."""
    dirs = []
    for pattern in patterns:
        found = [pattern] if osp.isdir(pattern) else sorted(
            p for p in glob.glob(pattern) if osp.isdir(p))
        if not found:
            raise FileNotFoundError(
                f'{pattern!r} is no folder and matches none.')
        dirs.extend(d for d in found if d not in dirs)
    return dirs


def latest_results(work_dir: str) -> Tuple[str, Dict[str, float]]:
    """Path and metrics of the newest ``<timestamp>/<timestamp>.json``."""
    files = [
        p
        for p in glob.glob(osp.join(work_dir, '**', '*.json'), recursive=True)
        if osp.splitext(osp.basename(p))[0] == osp.basename(osp.dirname(p))
    ]
    if not files:
        raise FileNotFoundError(
            f'No test results in {work_dir!r}: tools/test.py CONFIG CKPT '
            '--work-dir DIR writes them to DIR/<timestamp>/<timestamp>.json.')
    path = max(files, key=lambda p: (osp.basename(p), p))
    with open(path) as f:
        results = json.load(f)
    metrics = {
        k: float(v)
        for k, v in results.items() if isinstance(v, (int, float))
        and not isinstance(v, bool) and k.split('/')[-1] not in NOT_METRICS
    }
    return path, metrics


def auto_labels(dirs: List[str]) -> List[str]:
    """The path components in which the dirs differ."""
    parts = [osp.normpath(osp.abspath(d)).split(os.sep) for d in dirs]
    if len(parts) == 1:
        return [parts[0][-1]]
    head = 0
    while all(len(p) > head + 1 for p in parts) and \
            len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while all(len(p) - tail - 1 > head for p in parts) and \
            len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    labels = ['/'.join(p[head:len(p) - tail]) for p in parts]
    return labels if len(set(labels)) == len(labels) else \
        ['/'.join(p[head:]) for p in parts]


def build_table(runs: List[Tuple[str, Dict[str, float]]],
                metrics: Optional[List[str]] = None,
                layout: str = 'long',
                precision: int = 3) -> Tuple[List[str], List[List[str]]]:
    """Header and rows ('-' where a run lacks a value).

    Args:
        runs (list): (label, metrics) per work dir.
        metrics (list[str], optional): Metric names without test set.
            Default: all.
        layout (str): 'long' or 'wide'.
        precision (int): Decimals.
    """
    test_sets, names = [], []
    for _, values in runs:
        for key in values:
            test_set, _, metric = key.rpartition('/')
            if test_set not in test_sets:
                test_sets.append(test_set)
            if metric not in names:
                names.append(metric)
    if metrics:
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f'No run reports {unknown}; the metrics are '
                             f'{names}.')
        names = list(metrics)

    def cell(values, test_set, metric):
        key = f'{test_set}/{metric}' if test_set else metric
        return f'{values[key]:.{precision}f}' if key in values else '-'

    if layout == 'wide':
        columns = [(s, m) for s in test_sets for m in names]
        header = ['run'] + [f'{s}/{m}' if s else m for s, m in columns]
        rows = [[label] + [cell(values, s, m) for s, m in columns]
                for label, values in runs]
        return header, rows
    with_sets = test_sets != ['']
    header = (['test set'] if with_sets else []) + ['run'] + names
    rows = []
    for test_set in test_sets:
        for label, values in runs:
            rows.append(([test_set] if with_sets else []) + [label] +
                        [cell(values, test_set, m) for m in names])
    return header, rows


def render(header: List[str], rows: List[list], fmt: str = 'markdown') -> str:
    """A Markdown or CSV table; the analysis tools print theirs with it."""
    if fmt == 'csv':
        buf = io.StringIO()
        csv.writer(buf, lineterminator='\n').writerows([header] + rows)
        return buf.getvalue()
    lines = [header, ['---'] * len(header)] + rows
    return ''.join('| ' + ' | '.join(map(str, row)) + ' |\n' for row in lines)


def main(argv=None) -> str:
    args = parse_args(argv)
    dirs = expand(args.work_dirs)
    labels = args.labels or auto_labels(dirs)
    if len(labels) != len(dirs):
        raise ValueError(f'{len(labels)} labels for {len(dirs)} work dirs '
                         f'({dirs}).')
    runs = []
    for label, work_dir in zip(labels, dirs):
        path, values = latest_results(work_dir)
        print(f'{label}: {path}', file=sys.stderr)
        runs.append((label, values))
    header, rows = build_table(runs, args.metrics, args.layout, args.precision)
    table = render(header, rows, args.format)
    print(table, end='')
    if args.out:
        put_text(table, args.out)
    return table


if __name__ == '__main__':
    main()
