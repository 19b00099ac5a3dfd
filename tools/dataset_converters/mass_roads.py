"""Convert Massachusetts Roads to the layout of configs/*/mass-roads*.py.

    python tools/dataset_converters/mass_roads.py SRC [--out data/mass_roads]

SRC is the Toronto release or the Kaggle mirror; the official splits are
kept and the TIFF files copied unchanged.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (base_parser, check_layout, pair_files, run_cli,
                     write_splits)

COUNTS = {'train': 1108, 'val': 14, 'test': 49}
FOLDERS = {
    # layout: {our split: (image folder, mask folder)}
    'Toronto release': {
        'train': ('train/sat', 'train/map'),
        'val': ('valid/sat', 'valid/map'),
        'test': ('test/sat', 'test/map'),
    },
    'Kaggle mirror': {
        split: (f'tiff/{split}', f'tiff/{split}_labels')
        for split in COUNTS
    },
}
LAYOUT = """SRC/{train,valid,test}/{sat,map}/
    (https://www.cs.toronto.edu/~vmnih/data/)
or SRC/tiff/{train,val,test}{,_labels}/
    (Kaggle balraj98/massachusetts-roads-dataset)"""


def main(argv=None):
    args = base_parser(__doc__, 'data/mass_roads').parse_args(argv)
    found = check_layout(
        args.src, {
            name: [d for pair in splits.values() for d in pair]
            for name, splits in FOLDERS.items()
        }, 'Massachusetts Roads', LAYOUT)
    splits = {
        split:
        pair_files(
            osp.join(args.src, img),
            osp.join(args.src, mask),
            img_exts=('.tif', '.tiff'))
        for split, (img, mask) in FOLDERS[found].items()
    }
    write_splits(
        args,
        splits, f'Massachusetts Roads ({found}) from {args.src} -> {args.out} '
        '(official splits)',
        COUNTS,
        mask_ext='.tif',
        img_ext='.tiff')


if __name__ == '__main__':
    sys.exit(run_cli(main))
