"""Convert ISTD to the layout of configs/*/istd*.py.

    python tools/dataset_converters/istd.py SRC [--out data/istd]

SRC is the unzipped ``ISTD_Dataset`` folder; a seeded 10% of the training
set becomes the validation split.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (base_parser, check_layout, count_note, pair_files,
                     random_split, run_cli, write_splits)

LAYOUT = """SRC/train/train_A/*.png   shadow images
SRC/train/train_B/*.png   shadow masks
SRC/test/test_A/*.png, SRC/test/test_B/*.png
(ISTD_Dataset, https://github.com/DeepInsight-PCALab/ST-CGAN)"""


def main(argv=None):
    args = base_parser(__doc__, 'data/istd', val=0.1).parse_args(argv)
    folders = {s: (f'{s}/{s}_A', f'{s}/{s}_B') for s in ('train', 'test')}
    check_layout(args.src, [d for pair in folders.values() for d in pair],
                 'ISTD', LAYOUT)
    train, test = (pair_files(
        osp.join(args.src, img), osp.join(args.src, mask))
                   for img, mask in folders.values())
    header = [
        f'ISTD from {args.src} -> {args.out} (validation: '
        f'{args.val_fraction:.0%} of the training set, seed {args.seed})',
        count_note('training set', len(train), 1330)
    ]
    train, val = random_split(train, args.seed, args.val_fraction)
    write_splits(args, dict(train=train, val=val, test=test),
                 '\n'.join(filter(None, header)), dict(test=540))


if __name__ == '__main__':
    sys.exit(run_cli(main))
