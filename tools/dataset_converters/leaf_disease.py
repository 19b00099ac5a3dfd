"""Convert the leaf disease dataset to the layout of configs/*/leaf-disease*.

Download the Kaggle "Leaf disease segmentation dataset"
(https://www.kaggle.com/datasets/fakhrealam9537/leaf-disease-segmentation-dataset)
and unzip it into ``SRC``. The images and masks are looked for in the first
of these that exists::

    SRC/data/data/{images,masks}/    the Kaggle archive's original images
    SRC/data/{images,masks}/
    SRC/{images,masks}/

with images ``*.jpg`` and 0/255 masks ``*.png`` of the same stems (588
pairs). The archive's ``aug_data/`` (augmented copies) is not used: random
splits of augmented copies would leak test images into training.

The release has no split; this script draws a seeded random one::

    OUT/test/{images,masks}    --test-fraction (default 0.15) of all images
    OUT/val/{images,masks}     --val-fraction (default 0.1) of the rest
    OUT/train/{images,masks}   the remainder
    OUT/splits/*.txt

The Conv-LoRA paper's exact split is not published with it, so numbers are
comparable with the paper only approximately.

Usage::

    python tools/dataset_converters/leaf_disease.py SRC
        [--out data/leaf_disease] [--test-fraction 0.15]
        [--val-fraction 0.1] [--seed 0] [--symlink] [--overwrite]
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
