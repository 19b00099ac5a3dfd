"""Convert ISTD to the layout of configs/*/istd*.py.

    python tools/dataset_converters/istd.py SRC [--out data/istd]

SRC is the unzipped ``ISTD_Dataset`` folder; a seeded 10% of the training
set becomes the validation split (layout: docs/own_data.md).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (add_split_args, base_parser, check_entries, note_count,
                     pair_files, prepare_out, random_split, run_cli,
                     write_split)

LAYOUT = """SRC/train/train_A/*.png   shadow images
SRC/train/train_B/*.png   shadow masks
SRC/test/test_A/*.png, SRC/test/test_B/*.png
(ISTD_Dataset, https://github.com/DeepInsight-PCALab/ST-CGAN)"""


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], 'data/istd')
    add_split_args(parser, 0.1)
    args = parser.parse_args(argv)
    src = args.src
    check_entries(
        src, ['train/train_A', 'train/train_B', 'test/test_A', 'test/test_B'],
        'ISTD', LAYOUT)
    train = pair_files(
        osp.join(src, 'train', 'train_A'), osp.join(src, 'train', 'train_B'))
    test = pair_files(
        osp.join(src, 'test', 'test_A'), osp.join(src, 'test', 'test_B'))
    note = note_count('training set', len(train), 1330)
    train, val = random_split(train, args.val_fraction, args.seed)
    prepare_out(args.out, ['train', 'val', 'test'], args.overwrite)
    print(f'ISTD from {src} -> {args.out} (validation: '
          f'{args.val_fraction:.0%} of the training set, seed {args.seed})')
    print(write_split(train, args.out, 'train', args.symlink))
    print(write_split(val, args.out, 'val', args.symlink))
    if note:
        print(note)
    print(write_split(test, args.out, 'test', args.symlink))
    note = note_count('test set', len(test), 540)
    if note:
        print(note)


if __name__ == '__main__':
    sys.exit(run_cli(main))
