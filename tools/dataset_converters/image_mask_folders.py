"""Convert folders of images + binary masks into train/val/test splits.

Give one or more named sources, each ``NAME=SRC`` (a folder with images and
masks folders whose files match by stem) or ``NAME=IMAGES,MASKS`` (the two
folders)::

    SRC/images/<stem>.<jpg|png|...>
    SRC/masks/<stem>.<jpg|png|...>

Each source is split at random (seeded by ``--seed``) into train, val and
test; the train and val parts are pooled, each source keeps its own test
set. Sources given after ``--test`` are whole test sets (official ones)::

    OUT/train/{images,masks}/<source>_<stem>.*   pooled training images
    OUT/val/{images,masks}/<source>_<stem>.*     pooled validation images
    OUT/test/<source>/{images,masks}/<stem>.*    one test set per source
    OUT/splits/*.txt                             stems of each split

Images are copied (or symlinked); masks are decoded as the loader decodes
them and written as lossless 0/255 PNGs. Bad masks are all listed before
anything is written. Examples, including the paper benchmarks: see
``docs/own_data.md``.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (IMG_EXTS, LayoutError, Pair, check_entries, pair_files,
                     prepare_out, run_cli, write_split)


def parse_sources(specs: List[str],
                  img_dir: str = 'images',
                  mask_dir: str = 'masks') -> Dict[str, Tuple[str, str, str]]:
    """``['Name=DIR' or 'Name=IMAGES,MASKS', ...]`` -> ``{name: (root,
    images, masks)}``, names unique and usable as folder names."""
    sources: Dict[str, Tuple[str, str, str]] = {}
    for spec in specs:
        name, sep, folder = spec.partition('=')
        if not sep or not name or not folder:
            raise LayoutError(f'source {spec!r} is not NAME=FOLDER (e.g. '
                              'Kvasir=/data/Kvasir-SEG)')
        if os.sep in name or name in ('.', '..') or name.startswith('.'):
            raise LayoutError(f'source name {name!r} must be a plain folder '
                              'name (it names the test set)')
        if name in sources:
            raise LayoutError(f'source name {name!r} is given twice')
        images, comma, masks = folder.partition(',')
        sources[name] = ('', images, masks) if comma else (folder, img_dir,
                                                           mask_dir)
    return sources


def split_three(pairs: List[Pair], val_fraction: float, test_fraction: float,
                seed: int) -> Tuple[List[Pair], List[Pair], List[Pair]]:
    """Seeded random (train, val, test) split of one source, each sorted by
    stem: ``round(fraction * n)`` (at least 1) to test and val, drawn from
    one ``np.random.RandomState(seed)`` permutation of the sorted pairs."""
    for what, frac in (('val', val_fraction), ('test', test_fraction)):
        if not 0 <= frac < 1:
            raise ValueError(
                f'--{what}-fraction must be in [0, 1), got {frac}')
    items = sorted(pairs)
    n = len(items)
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    if n_test + n_val >= n:
        raise LayoutError(
            f'cannot split {n} images into {n_val} val + {n_test} test: '
            'nothing would be left to train on')
    order = np.random.RandomState(seed).permutation(n).tolist()
    test_ids = set(order[:n_test])
    val_ids = set(order[n_test:n_test + n_val])
    train = [p for i, p in enumerate(items) if i not in test_ids | val_ids]
    val = [p for i, p in enumerate(items) if i in val_ids]
    test = [p for i, p in enumerate(items) if i in test_ids]
    return train, val, test


def plan_masks(name: str, pairs: List[Pair], encoding: str, invert: bool,
               resize: Optional[str]) -> Dict[str, tuple]:
    """Read every mask of a source once, decide its encoding and check it
    and its size (a LayoutError lists every bad pair).

    Returns:
        dict: mask path -> (label lookup table, (w, h) to resize to or None).
    """
    from mmseg_convlora.datasets.pair_checks import image_header, parallel_map
    from mmseg_convlora.datasets.transforms.binary_loading import (
        decide_encoding, label_lut, mask_kind, read_binary_mask, value_counts)

    def read(pair):
        _, img, path = pair
        with open(path, 'rb') as f:
            mask = read_binary_mask(f.read(), path)
        full = 65535 if mask.dtype.itemsize > 1 else 255
        return value_counts(mask) + (full, mask.shape[::-1],
                                     image_header(img)[0])

    try:
        masks = parallel_map(read, pairs)
        if encoding == 'auto':
            encoding = decide_encoding([(p[2], mask_kind(m[0], m[2]))
                                        for p, m in zip(pairs, masks)])
    except ValueError as err:
        raise LayoutError(f'{err} Converter: --mask-encoding.') from err
    plan, problems, fractions, same_aspect = {}, [], [], 0
    for (_, img, path), (values, counts, full, size,
                         img_size) in zip(pairs, masks):
        target = None
        if size != img_size:
            aspect = abs(size[0] * img_size[1] - size[1] * img_size[0]) <= \
                max(img_size)
            same_aspect += aspect
            if not (aspect and resize):
                problems.append(
                    f'{path!r} is {size[0]}x{size[1]} but its image is '
                    f'{img_size[0]}x{img_size[1]} (WxH)' +
                    (', same aspect ratio' if aspect else ''))
                continue
            target = img_size
        try:
            lut = label_lut(values, counts, full, path, encoding, None, invert)
        except ValueError as err:
            problems.append(str(err))
            continue
        labels = lut[values]
        if (labels == 255).any():
            problems.append(f'{path!r} has void pixels, which 0/255 masks '
                            'cannot keep')
            continue
        fractions.append(counts[labels == 1].sum() / counts.sum())
        plan[path] = (lut, target)
    if problems:
        hint = f' {same_aspect} have their image\'s aspect ratio: ' \
            '--resize-masks nearest resizes those.' if same_aspect and \
            not resize else ''
        raise LayoutError(
            f'{len(problems)} of {len(pairs)} masks of {name!r} cannot be '
            'converted (a mask must be binary, of the same size as its '
            f'image):{hint}\n  ' + '\n  '.join(problems[:50]) +
            ('\n  ...' if len(problems) > 50 else ''))
    resized = sum(t is not None for _, t in plan.values())
    if resized:
        print(f'{name}: {resized} masks resized ({resize}) to their image '
              'size')
    if fractions and min(fractions) > 0.5:
        print(f'note: {name}: the foreground covers more than half of every '
              f'mask (at least {min(fractions):.0%}). If the object is the '
              'dark part of the masks, rerun with --invert-masks.')
    return plan


def mask_writer(plan: Dict[str, tuple]):
    """``convert_mask`` for :func:`write_split`: the planned 0/255 mask."""
    import cv2

    from mmseg_convlora.datasets.transforms.binary_loading import \
        read_binary_mask

    def convert(data, path, image_path):
        lut, target = plan[path]
        with open(path, 'rb') as f:
            labels = lut[read_binary_mask(f.read(), path)]
        if target is not None:
            labels = cv2.resize(
                labels, target, interpolation=cv2.INTER_NEAREST)
        return labels * 255

    return convert


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'sources',
        nargs='+',
        metavar='NAME=FOLDER',
        help='named source folders, each with the images and masks folders '
        '(NAME=FOLDER) or the two folders (NAME=IMAGES,MASKS)')
    parser.add_argument(
        '--test',
        nargs='+',
        default=[],
        metavar='NAME=FOLDER',
        help='sources used whole as test sets, named like the others')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--symlink',
        action='store_true',
        help='symlink the images instead of copying them')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace split folders written before')
    parser.add_argument(
        '--img-dir',
        default='images',
        help='images folder inside each source (images)')
    parser.add_argument(
        '--mask-dir',
        default='masks',
        help='masks folder inside each source (masks)')
    parser.add_argument(
        '--val-fraction',
        type=float,
        default=0.1,
        help='fraction of each source for validation (0.1)')
    parser.add_argument(
        '--test-fraction',
        type=float,
        default=0.2,
        help='fraction of each source for testing (0.2)')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the random split (0)')
    parser.add_argument(
        '--resize-masks',
        choices=['nearest'],
        help='resize masks of another size than their image but the same '
        'aspect ratio to the image size (nearest neighbour)')
    parser.add_argument(
        '--mask-encoding',
        choices=['auto', '0-255', '0-1'],
        default='auto',
        help='how the masks store the labels (auto: decided once per source '
        'from all its masks)')
    parser.add_argument(
        '--invert-masks',
        action='store_true',
        help='the stored low value (0) is the object, e.g. dark membranes')
    args = parser.parse_args(argv)
    sources = parse_sources(args.sources + args.test, args.img_dir,
                            args.mask_dir)
    layout = (f'SRC/{args.img_dir}/<stem>.<ext>\nSRC/{args.mask_dir}/'
              f'<stem>.<ext>   (images: {", ".join(IMG_EXTS)}), or '
              'NAME=IMAGES,MASKS')
    splits, plan = {}, {}
    for i, (name, (root, images, masks)) in enumerate(sources.items()):
        absent = [d for d in (images, masks) if not osp.isdir(d)]
        if root:
            check_entries(root, [images, masks],
                          f'image/mask folder pair {name!r}', layout)
        elif absent:
            raise LayoutError(f'source {name!r}: {absent} is not a folder')
        pairs = pair_files(osp.join(root, images), osp.join(root, masks))
        plan.update(
            plan_masks(name, pairs, args.mask_encoding, args.invert_masks,
                       args.resize_masks))
        splits[name] = ([], [], pairs) if i >= len(args.sources) else \
            split_three(pairs, args.val_fraction, args.test_fraction,
                        args.seed)
    prepare_out(args.out, ['train', 'val', 'test'], args.overwrite)
    print(f'{len(sources)} source(s) -> {args.out} (seed {args.seed}; per '
          f'source {args.val_fraction:.0%} val, {args.test_fraction:.0%} '
          'test, the rest train)')
    pooled = {'train': [], 'val': []}
    for name, (train, val, test) in splits.items():
        print(f'  {name}: {len(train)} train, {len(val)} val, {len(test)} '
              f'test from {osp.join(*sources[name][:2])}')
        for split, part in (('train', train), ('val', val)):
            pooled[split] += [(f'{name}_{stem}', img, mask)
                              for stem, img, mask in part]
        if test:
            print(
                write_split(
                    test,
                    args.out,
                    f'test/{name}',
                    args.symlink,
                    convert_mask=mask_writer(plan)))
    for split, pairs in pooled.items():
        if pairs:
            print(
                write_split(
                    pairs,
                    args.out,
                    split,
                    args.symlink,
                    convert_mask=mask_writer(plan)))


if __name__ == '__main__':
    sys.exit(run_cli(main))
