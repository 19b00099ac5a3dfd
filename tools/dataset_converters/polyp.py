"""Convert PraNet's polyp benchmark to the layout of configs/*/polyp*.py.

Download ``TrainDataset.zip`` and ``TestDataset.zip`` from the PraNet
repository (https://github.com/DengPingFan/PraNet, "Training / Testing
dataset" Google Drive links) and unzip both into one folder ``SRC``::

    SRC/TrainDataset/image/*.png     1450 = 900 Kvasir-SEG + 550 CVC-ClinicDB
    SRC/TrainDataset/mask/*.png      (images/ and masks/ are accepted too)
    SRC/TestDataset/Kvasir/{images,masks}/            100
    SRC/TestDataset/CVC-ClinicDB/{images,masks}/       62
    SRC/TestDataset/CVC-ColonDB/{images,masks}/       380
    SRC/TestDataset/ETIS-LaribPolypDB/{images,masks}/ 196
    SRC/TestDataset/CVC-300/{images,masks}/            60  (EndoScene, CVC-T)

PraNet's 9:1 split of Kvasir-SEG and CVC-ClinicDB is only published as these
folders (it was drawn at random once), so they are the source; the raw
Kvasir-SEG / CVC-ClinicDB releases cannot reproduce it. This script writes::

    OUT/train/{images,masks}        90% of TrainDataset
    OUT/val/{images,masks}          10% of TrainDataset, seeded random
    OUT/test/<test set>/{images,masks}
    OUT/splits/*.txt                stems of each split

The validation split (for picking the best checkpoint) is this package's
choice: the Conv-LoRA paper does not publish one. ``--val-fraction`` and
``--seed`` change it. Masks are written as ``<stem>.png``.

Usage::

    python tools/dataset_converters/polyp.py SRC [--out data/polyp]
        [--val-fraction 0.1] [--seed 0] [--symlink] [--overwrite]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (LayoutError, add_split_args, base_parser, check_entries,
                     first_existing, note_count, pair_files, prepare_out,
                     random_split, run_cli, write_split)

TEST_SETS = {
    'Kvasir': 100,
    'CVC-ClinicDB': 62,
    'CVC-ColonDB': 380,
    'ETIS-LaribPolypDB': 196,
    'CVC-300': 60,
}
NUM_TRAIN = 1450
LAYOUT = """SRC/TrainDataset/{image,mask}/*.png   (or images/, masks/)
SRC/TestDataset/{Kvasir,CVC-ClinicDB,CVC-ColonDB,ETIS-LaribPolypDB,CVC-300}/
    {images,masks}/*.png
(PraNet's TrainDataset.zip and TestDataset.zip,
 https://github.com/DengPingFan/PraNet)"""


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], 'data/polyp')
    add_split_args(parser, 0.1)
    args = parser.parse_args(argv)
    src = args.src
    check_entries(src, ['TrainDataset', 'TestDataset'] +
                  [f'TestDataset/{name}/images' for name in TEST_SETS] +
                  [f'TestDataset/{name}/masks'
                   for name in TEST_SETS], 'PraNet polyp', LAYOUT)
    img_sub = first_existing(src,
                             ['TrainDataset/image', 'TrainDataset/images'])
    mask_sub = first_existing(src, ['TrainDataset/mask', 'TrainDataset/masks'])
    if img_sub is None or mask_sub is None:
        raise LayoutError(
            f'{src!r}: TrainDataset has no image/ (or images/) and mask/ '
            f'(or masks/) folders. Expected:\n{LAYOUT}')
    train = pair_files(osp.join(src, img_sub), osp.join(src, mask_sub))
    tests = {
        name:
        pair_files(
            osp.join(src, 'TestDataset', name, 'images'),
            osp.join(src, 'TestDataset', name, 'masks'))
        for name in TEST_SETS
    }
    train, val = random_split(train, args.val_fraction, args.seed)
    prepare_out(args.out, ['train', 'val', 'test'], args.overwrite)
    print(f'PraNet polyp data from {src} -> {args.out} (validation: '
          f'{args.val_fraction:.0%} of TrainDataset, seed {args.seed})')
    note = note_count('TrainDataset', len(train) + len(val), NUM_TRAIN)
    print(write_split(train, args.out, 'train', args.symlink))
    print(write_split(val, args.out, 'val', args.symlink))
    if note:
        print(note)
    for name, pairs in tests.items():
        print(write_split(pairs, args.out, f'test/{name}', args.symlink))
        note = note_count(name, len(pairs), TEST_SETS[name])
        if note:
            print(note)


if __name__ == '__main__':
    sys.exit(run_cli(main))
