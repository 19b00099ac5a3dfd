"""Convert ISIC 2017 (part 1) to the layout of configs/*/isic2017*.py.

    python tools/dataset_converters/isic2017.py SRC [--out data/isic2017]

SRC holds the six unzipped part-1 archives; the official splits are kept
(layout: ``LAYOUT`` below and docs/own_data.md).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (base_parser, check_entries, note_count, pair_files,
                     prepare_out, run_cli, write_split)

SPLITS = {
    # our split: (image folder, mask folder, official count)
    'train':
    ('ISIC-2017_Training_Data', 'ISIC-2017_Training_Part1_GroundTruth', 2000),
    'val': ('ISIC-2017_Validation_Data',
            'ISIC-2017_Validation_Part1_GroundTruth', 150),
    'test':
    ('ISIC-2017_Test_v2_Data', 'ISIC-2017_Test_v2_Part1_GroundTruth', 600),
}
LAYOUT = '\n'.join(f'SRC/{img}/ISIC_xxxxxxx.jpg\nSRC/{mask}/'
                   'ISIC_xxxxxxx_segmentation.png'
                   for img, mask, _ in SPLITS.values()) + \
    '\n(https://challenge.isic-archive.com/data/#2017)'


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0], 'data/isic2017')
    args = parser.parse_args(argv)
    src = args.src
    check_entries(src,
                  [d for img, mask, _ in SPLITS.values() for d in (img, mask)],
                  'ISIC 2017', LAYOUT)
    pairs = {
        split:
        pair_files(
            osp.join(src, img),
            osp.join(src, mask),
            mask_strip='_segmentation',
            img_skip=('_superpixels', ),
            img_exts=('.jpg', '.jpeg', '.png'))
        for split, (img, mask, _) in SPLITS.items()
    }
    prepare_out(args.out, list(SPLITS), args.overwrite)
    print(f'ISIC 2017 from {src} -> {args.out} (official splits)')
    for split, items in pairs.items():
        print(write_split(items, args.out, split, args.symlink))
        note = note_count(split, len(items), SPLITS[split][2])
        if note:
            print(note)


if __name__ == '__main__':
    sys.exit(run_cli(main))
