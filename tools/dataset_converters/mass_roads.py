"""Convert Massachusetts Roads to the layout of configs/*/mass-roads*.py.

    python tools/dataset_converters/mass_roads.py SRC [--out data/mass_roads]

SRC is the Toronto release or the Kaggle mirror (``LAYOUTS`` below); the
official splits are kept and the TIFF files copied unchanged.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (LayoutError, base_parser, note_count, pair_files,
                     prepare_out, run_cli, write_split)

COUNTS = {'train': 1108, 'val': 14, 'test': 49}
LAYOUTS = {
    # name: {our split: (image folder, mask folder)}
    'Toronto release': {
        'train': ('train/sat', 'train/map'),
        'val': ('valid/sat', 'valid/map'),
        'test': ('test/sat', 'test/map'),
    },
    'Kaggle mirror': {
        'train': ('tiff/train', 'tiff/train_labels'),
        'val': ('tiff/val', 'tiff/val_labels'),
        'test': ('tiff/test', 'tiff/test_labels'),
    },
}
LAYOUT = """SRC/{train,valid,test}/{sat,map}/
    (https://www.cs.toronto.edu/~vmnih/data/)
or SRC/tiff/{train,val,test}{,_labels}/
    (Kaggle balraj98/massachusetts-roads-dataset)"""
TIF = ('.tif', '.tiff')


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], 'data/mass_roads')
    args = parser.parse_args(argv)
    src = args.src
    if not osp.isdir(src):
        raise LayoutError(f'{src!r} is not a folder. Expected:\n{LAYOUT}')
    found, missing = None, {}
    for name, folders in LAYOUTS.items():
        absent = [
            d for pair in folders.values() for d in pair
            if not osp.isdir(osp.join(src, d))
        ]
        if not absent:
            found = name
            break
        missing[name] = absent
    if found is None:
        details = '; '.join(f'{name}: missing {absent}'
                            for name, absent in missing.items())
        raise LayoutError(
            f'{src!r} does not look like Massachusetts Roads ({details}). '
            f'Expected:\n{LAYOUT}')
    pairs = {
        split:
        pair_files(osp.join(src, img), osp.join(src, mask), img_exts=TIF)
        for split, (img, mask) in LAYOUTS[found].items()
    }
    prepare_out(args.out, list(COUNTS), args.overwrite)
    print(f'Massachusetts Roads ({found}) from {src} -> {args.out} '
          '(official splits)')
    for split, items in pairs.items():
        print(
            write_split(
                items,
                args.out,
                split,
                args.symlink,
                mask_ext='.tif',
                img_ext='.tiff'))
        note = note_count(split, len(items), COUNTS[split])
        if note:
            print(note)


if __name__ == '__main__':
    sys.exit(run_cli(main))
