"""Split folders of images + binary masks into train/val/test.

Each source, ``NAME=FOLDER`` (with ``images`` and ``masks`` folders) or
``NAME=IMAGES,MASKS``, pairs images and masks by stem and is split at random
(``--seed``); the train and val parts are pooled, each source keeps its own
test set, and ``--test`` sources are whole test sets::

    OUT/{train,val}/{images,masks}/<source>_<stem>.*
    OUT/test/<source>/{images,masks}/<stem>.*
    OUT/splits/*.txt

Masks are decoded as the loader decodes them and written as 0/255 PNGs;
every bad mask is listed before anything is written. Examples:
docs/own_data.md.
"""
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _common import (IMG_EXTS, LayoutError, Pair, base_parser, check_layout,
                     pair_files, random_split, run_cli, write_splits)


def parse_sources(specs: List[str], img_dir: str,
                  mask_dir: str) -> Dict[str, Tuple[str, str, str]]:
    """``['NAME=DIR' or 'NAME=IMAGES,MASKS', ...]`` -> ``{NAME: (root,
    images, masks)}``."""
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


def mask_reader(plan: Dict[str, tuple]):
    """``read_mask`` for :func:`write_split`: the planned 0/255 mask."""
    import cv2

    from mmseg_convlora.datasets.transforms.binary_loading import \
        read_binary_mask

    def read(path):
        lut, target = plan[path]
        with open(path, 'rb') as f:
            labels = lut[read_binary_mask(f.read(), path)]
        if target is not None:
            labels = cv2.resize(
                labels, target, interpolation=cv2.INTER_NEAREST)
        return labels * 255

    return read


def main(argv=None):
    parser = base_parser(__doc__, val=0.1, test=0.2)
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
    parser.add_argument(
        '--img-dir',
        default='images',
        help='images folder inside each source (images)')
    parser.add_argument(
        '--mask-dir',
        default='masks',
        help='masks folder inside each source (masks)')
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
    splits = dict(train=[], val=[], test=[])
    lines = [
        f'{len(sources)} source(s) -> {args.out} (seed {args.seed}; per '
        f'source {args.val_fraction:.0%} val, {args.test_fraction:.0%} '
        'test, the rest train)'
    ]
    plan = {}
    for i, (name, (root, images, masks)) in enumerate(sources.items()):
        absent = [d for d in (images, masks) if not osp.isdir(d)]
        if root:
            check_layout(root, [images, masks],
                         f'image/mask folder pair {name!r}', layout)
        elif absent:
            raise LayoutError(f'source {name!r}: {absent} is not a folder')
        pairs = pair_files(osp.join(root, images), osp.join(root, masks))
        plan.update(
            plan_masks(name, pairs, args.mask_encoding, args.invert_masks,
                       args.resize_masks))
        if i < len(args.sources):
            train, test, val = random_split(pairs, args.seed,
                                            args.test_fraction,
                                            args.val_fraction)
        else:
            train, test, val = [], pairs, []
        lines.append(f'  {name}: {len(train)} train, {len(val)} val, '
                     f'{len(test)} test from {osp.join(root, images)}')
        for split, part in (('train', train), ('val', val)):
            splits[split] += [(f'{name}_{stem}', img, mask)
                              for stem, img, mask in part]
        splits[f'test/{name}'] = test
    write_splits(args, splits, '\n'.join(lines), read_mask=mask_reader(plan))


if __name__ == '__main__':
    sys.exit(run_cli(main))
