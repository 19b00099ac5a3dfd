"""Convert the COD benchmark to the layout of configs/*/camouflage*.py.

Download the training and testing sets as packaged by SINet-V2
(https://github.com/GewelsJI/SINet-V2, "TrainDataset.zip" = COD10K-train +
CAMO-train, "TestDataset.zip"; the same packages SAM-Adapter and Conv-LoRA
use) and unzip both into one folder ``SRC``::

    SRC/TrainDataset/Imgs/*.jpg      4040 = 3040 COD10K + 1000 CAMO
    SRC/TrainDataset/GT/*.png
    SRC/TestDataset/CAMO/{Imgs,GT}/         250
    SRC/TestDataset/COD10K/{Imgs,GT}/      2026
    SRC/TestDataset/CHAMELEON/{Imgs,GT}/     76
    (TrainDataset/Edge and TestDataset/NC4K, if present, are not used)

This script writes::

    OUT/train/{images,masks}        90% of TrainDataset
    OUT/val/{images,masks}          10%, seeded random
    OUT/test/{CAMO,COD10K,CHAMELEON}/{images,masks}
    OUT/splits/*.txt

The validation split is this package's choice (``--val-fraction``,
``--seed``). Masks are written as ``<stem>.png``.

Usage::

    python tools/dataset_converters/camouflage.py SRC [--out data/camouflage]
        [--val-fraction 0.1] [--seed 0] [--symlink] [--overwrite]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (add_split_args, base_parser, check_entries, note_count,
                     pair_files, prepare_out, random_split, run_cli,
                     write_split)

TEST_SETS = {'CAMO': 250, 'COD10K': 2026, 'CHAMELEON': 76}
NUM_TRAIN = 4040
LAYOUT = """SRC/TrainDataset/{Imgs,GT}/
SRC/TestDataset/{CAMO,COD10K,CHAMELEON}/{Imgs,GT}/
(SINet-V2's TrainDataset.zip and TestDataset.zip,
 https://github.com/GewelsJI/SINet-V2)"""


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], 'data/camouflage')
    add_split_args(parser, 0.1)
    args = parser.parse_args(argv)
    src = args.src
    check_entries(src, ['TrainDataset/Imgs', 'TrainDataset/GT'] + [
        f'TestDataset/{name}/{sub}' for name in TEST_SETS
        for sub in ('Imgs', 'GT')
    ], 'camouflaged object (COD)', LAYOUT)
    train = pair_files(
        osp.join(src, 'TrainDataset', 'Imgs'),
        osp.join(src, 'TrainDataset', 'GT'))
    tests = {
        name:
        pair_files(
            osp.join(src, 'TestDataset', name, 'Imgs'),
            osp.join(src, 'TestDataset', name, 'GT'))
        for name in TEST_SETS
    }
    note = note_count('TrainDataset', len(train), NUM_TRAIN)
    train, val = random_split(train, args.val_fraction, args.seed)
    prepare_out(args.out, ['train', 'val', 'test'], args.overwrite)
    print(f'COD data from {src} -> {args.out} (validation: '
          f'{args.val_fraction:.0%} of TrainDataset, seed {args.seed})')
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
