"""Convert ISIC 2017 (part 1) to the layout of configs/*/isic2017*.py.

    python tools/dataset_converters/isic2017.py SRC [--out data/isic2017]

SRC holds the six unzipped part-1 archives; the official splits are kept.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (base_parser, check_layout, pair_files, run_cli,
                     write_splits)

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
    args = base_parser(__doc__, 'data/isic2017').parse_args(argv)
    check_layout(args.src, [d for s in SPLITS.values() for d in s[:2]],
                 'ISIC 2017', LAYOUT)
    splits = {
        split:
        pair_files(
            osp.join(args.src, img),
            osp.join(args.src, mask),
            mask_strip='_segmentation',
            img_skip=('_superpixels', ),
            img_exts=('.jpg', '.jpeg', '.png'))
        for split, (img, mask, _) in SPLITS.items()
    }
    write_splits(args, splits,
                 f'ISIC 2017 from {args.src} -> {args.out} (official splits)',
                 {
                     split: count
                     for split, (_, _, count) in SPLITS.items()
                 })


if __name__ == '__main__':
    sys.exit(run_cli(main))
