"""Convert the leaf disease dataset to the layout of configs/*/leaf-disease*.

    python tools/dataset_converters/leaf_disease.py SRC [--out DIR]

SRC is the unzipped Kaggle archive; a seeded random split is drawn (test
15%, val 10% of the rest) from the original images only.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (base_parser, check_layout, pair_files, random_split,
                     run_cli, write_splits)

LAYOUTS = {
    base: [osp.normpath(osp.join(base, d)) for d in ('images', 'masks')]
    for base in ('data/data', 'data', '.')
}
LAYOUT = """SRC/data/data/images/*.jpg and SRC/data/data/masks/*.png
(or SRC/data/{images,masks}, or SRC/{images,masks});
Kaggle "Leaf disease segmentation dataset" (fakhrealam9537)"""


def main(argv=None):
    args = base_parser(
        __doc__, 'data/leaf_disease', val=0.1, test=0.15).parse_args(argv)
    base = check_layout(args.src, LAYOUTS, 'leaf disease', LAYOUT)
    base = osp.normpath(osp.join(args.src, base))
    pairs = pair_files(osp.join(base, 'images'), osp.join(base, 'masks'))
    rest, test = random_split(pairs, args.seed, args.test_fraction)
    train, val = random_split(rest, args.seed, args.val_fraction)
    write_splits(
        args, dict(train=train, val=val, test=test),
        f'Leaf disease data from {base} -> {args.out} ({len(pairs)} images; '
        f'seeded random split, seed {args.seed}: test '
        f'{args.test_fraction:.0%}, val {args.val_fraction:.0%} of the rest)')


if __name__ == '__main__':
    sys.exit(run_cli(main))
