"""Convert the leaf disease dataset to the layout of configs/*/leaf-disease*.

    python tools/dataset_converters/leaf_disease.py SRC [--out DIR]

SRC is the unzipped Kaggle archive; a seeded random split is drawn (test
15%, val 10% of the rest) from the original images only (docs/own_data.md).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (LayoutError, add_split_args, base_parser, first_existing,
                     pair_files, prepare_out, random_split, run_cli,
                     write_split)

CANDIDATES = ('data/data', 'data', '.')
LAYOUT = """SRC/data/data/images/*.jpg and SRC/data/data/masks/*.png
(or SRC/data/{images,masks}, or SRC/{images,masks});
Kaggle "Leaf disease segmentation dataset" (fakhrealam9537)"""


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], 'data/leaf_disease')
    add_split_args(parser, 0.1)
    parser.add_argument(
        '--test-fraction',
        type=float,
        default=0.15,
        help='fraction of all images used for testing '
        '(default 0.15)')
    args = parser.parse_args(argv)
    src = args.src
    if not osp.isdir(src):
        raise LayoutError(f'{src!r} is not a folder. Expected:\n{LAYOUT}')
    base = None
    for cand in CANDIDATES:
        if first_existing(src, [osp.join(cand, 'images')]) and \
                first_existing(src, [osp.join(cand, 'masks')]):
            base = osp.normpath(osp.join(src, cand))
            break
    if base is None:
        raise LayoutError(
            f'{src!r} does not look like the leaf disease download: missing '
            f"'images' and 'masks' folders (looked in "
            f'{", ".join(repr(c) for c in CANDIDATES)}). Expected:\n{LAYOUT}')
    pairs = pair_files(osp.join(base, 'images'), osp.join(base, 'masks'))
    rest, test = random_split(pairs, args.test_fraction, args.seed)
    train, val = random_split(rest, args.val_fraction, args.seed)
    prepare_out(args.out, ['train', 'val', 'test'], args.overwrite)
    print(f'Leaf disease data from {base} -> {args.out} ({len(pairs)} '
          f'images; seeded random split, seed {args.seed}: test '
          f'{args.test_fraction:.0%}, val {args.val_fraction:.0%} of the '
          'rest)')
    for split, items in (('train', train), ('val', val), ('test', test)):
        print(write_split(items, args.out, split, args.symlink))


if __name__ == '__main__':
    sys.exit(run_cli(main))
