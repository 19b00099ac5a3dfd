"""Mean per-image difference A - B of ``prompt_eval.py --out`` files with a
paired bootstrap 95% interval, per test set; see docs/prompts.md."""
import argparse
import os.path as osp
import sys
from typing import Dict, Tuple

import numpy as np
from mmengine.fileio import load

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from tools.analysis.results_table import render


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        'a', help='prompt_eval JSON file(s), comma-separated (per-image mean)')
    parser.add_argument('b', help='the same for B')
    parser.add_argument('--metric', default='Dice', help='Dice, IoU or Sm')
    parser.add_argument(
        '--prompt', default='none', help='prompt of A (and of B)')
    parser.add_argument('--prompt-b', help='prompt of B')
    parser.add_argument('--n', type=int, default=10000)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def bootstrap(diffs: np.ndarray,
              n: int = 10000,
              seed: int = 0) -> Tuple[float, float, float]:
    """Mean of ``diffs`` and the 2.5 and 97.5 percentiles of the means of
    ``n`` resamples with replacement."""
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), (n, len(diffs)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def per_image(files: str, metric: str,
              prompt: str) -> Dict[str, Dict[str, float]]:
    """``{test set: {image: value}}``, averaged over the files."""
    runs = []
    for path in files.split(','):
        run = {}
        for name, res in load(path)['results'].items():
            if prompt not in res['per_image']:
                raise SystemExit(f'{path}: no prompt {prompt!r} in test set '
                                 f'{name} (has {list(res["per_image"])})')
            run[name] = dict(
                zip(res['images'], res['per_image'][prompt][metric]))
        runs.append(run)
    for run in runs[1:]:
        if {k: set(v) for k, v in run.items()} != \
                {k: set(v) for k, v in runs[0].items()}:
            raise SystemExit(f'{files}: the files hold different images.')
    return {
        name: {
            img: float(np.mean([run[name][img] for run in runs]))
            for img in images
        }
        for name, images in runs[0].items()
    }


def main(argv=None):
    args = parse_args(argv)
    a = per_image(args.a, args.metric, args.prompt)
    b = per_image(args.b, args.metric, args.prompt_b or args.prompt)
    out, rows = {}, []
    for name in a:
        if name not in b or set(a[name]) != set(b[name]):
            raise SystemExit(f'test set {name}: A and B hold different '
                             'images; compare evaluations of the same data.')
        images = sorted(a[name])
        diffs = np.array([a[name][i] - b[name][i] for i in images])
        mean, low, high = bootstrap(diffs, args.n, args.seed)
        out[name] = dict(mean=mean, low=low, high=high)
        interval = f'[{low:+.3f}, {high:+.3f}]'
        rows.append([name, len(images), f'{mean:+.3f}', interval])
    header = ['test set', 'images', f'{args.metric} A - B', '95% interval']
    print(render(header, rows), end='')
    return out


if __name__ == '__main__':
    main()
