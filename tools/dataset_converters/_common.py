"""Shared helpers of the dataset converters (no mmseg import: fast to run).

Every converter writes ``OUT/<split>/{images,masks}/`` and
``OUT/splits/<split>.txt`` (``<split>`` may be nested, e.g. ``test/Kvasir``).
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')

Pair = Tuple[str, str, str]  # (stem, image path, mask path)


class LayoutError(Exception):
    """The source folder is not the expected dataset layout."""


def check_layout(root: str, layouts: Union[Sequence[str], Dict[str, list]],
                 dataset: str, expected: str) -> str:
    """The first layout whose relative paths all exist in ``root``.

    Args:
        layouts (list | dict): The paths of the one layout, or
            ``{name: paths}`` of layouts tried in order.

    Returns:
        str: The name of the layout found.
    """
    if not osp.isdir(root):
        raise LayoutError(f'{root!r} is not a folder. Expected the {dataset} '
                          f'download:\n{expected}')
    if not isinstance(layouts, dict):
        layouts = {'': layouts}
    missing = []
    for name, entries in layouts.items():
        absent = [e for e in entries if not osp.exists(osp.join(root, e))]
        if not absent:
            return name
        # name a missing folder once, not each entry below it
        absent = [
            e for e in absent
            if not any(e.startswith(m.rstrip('/') + '/') for m in absent)
        ]
        missing.append((f'{name}: ' if name else '') + 'missing ' +
                       ', '.join(repr(e) for e in absent))
    raise LayoutError(
        f'{root!r} does not look like the {dataset} download: '
        f'{"; ".join(missing)} (found: {sorted(os.listdir(root))[:12]}). '
        f'Expected:\n{expected}')


def _list_files(folder: str, exts: Sequence[str], strip: str,
                skip: Sequence[str]) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in exts or name.startswith('.') or \
                stem.endswith(tuple(skip)):
            continue
        if strip and stem.endswith(strip):
            stem = stem[:-len(strip)]
        if stem in found:
            raise LayoutError(f'{folder!r} holds two files with the stem '
                              f'{stem!r}: {osp.basename(found[stem])!r} and '
                              f'{name!r}.')
        found[stem] = osp.join(folder, name)
    return found


def pair_files(img_dir: str,
               mask_dir: str,
               mask_strip: str = '',
               img_skip: Sequence[str] = (),
               img_exts: Sequence[str] = IMG_EXTS) -> List[Pair]:
    """Match images and masks by stem; refuse images without a mask.

    Args:
        mask_strip (str): Suffix removed from the mask stems.
        img_skip (Sequence[str]): Image stem endings to ignore.
    """
    images = _list_files(img_dir, img_exts, '', img_skip)
    masks = _list_files(mask_dir, IMG_EXTS, mask_strip, ())
    if not images:
        raise LayoutError(f'no images ({"/".join(img_exts)}) in {img_dir!r}')
    missing = sorted(set(images) - set(masks))
    if missing:
        raise LayoutError(
            f'{len(missing)} of {len(images)} images in {img_dir!r} have no '
            f'mask in {mask_dir!r}, e.g. {missing[:3]}')
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def random_split(pairs: Sequence[Pair], seed: int, *fractions:
                 float) -> List[List[Pair]]:
    """Seeded random split of the stem-sorted ``pairs``.

    Each fraction takes ``round(fraction * n)`` items (at least 1 when
    fraction > 0), the first from the start of one
    ``np.random.RandomState(seed)`` permutation, the next after it.

    Returns:
        list: The rest, then one part per fraction, each sorted by stem.
    """
    items = sorted(pairs)
    sizes = [max(1, round(f * len(items))) if f > 0 else 0 for f in fractions]
    if sum(sizes) >= len(items):
        raise LayoutError(
            f'cannot split {len(items)} images into {sizes} held out: '
            'nothing would be left to train on')
    order = np.random.RandomState(seed).permutation(len(items)).tolist()
    part = {}
    for k, size in enumerate(sizes, 1):
        part.update((i, k) for i in order[:size])
        order = order[size:]
    return [[p for i, p in enumerate(items) if part.get(i, 0) == k]
            for k in range(len(sizes) + 1)]


def count_note(what: str, found: int,
               expected: Optional[int]) -> Optional[str]:
    """A line noting a split size other than the official one."""
    if expected not in (None, found):
        return (f'  note: the official {what} has {expected} images, found '
                f'{found} (an incomplete download or another version?)')
    return None


def write_splits(args: argparse.Namespace,
                 splits: Dict[str, List[Pair]],
                 header: str,
                 counts: Optional[Dict[str, int]] = None,
                 mask_ext: Optional[str] = '.png',
                 img_ext: Optional[str] = None,
                 read_mask: Optional[Callable] = None) -> None:
    """Write ``OUT/<split>/{images,masks}`` and ``OUT/splits/<split>.txt``.

    Args:
        args (Namespace): ``out``, ``symlink`` and ``overwrite``.
        splits (dict): ``{split: pairs}``; empty splits are not written, but
            their top folder is replaced (``--overwrite``) like the others.
        header (str): Printed before writing.
        counts (dict, optional): The official number of images per split.
        mask_ext (str, optional): Extension of the written masks; a mask
            with another one (tif vs tiff aside) is re-encoded. None keeps
            the source's.
        img_ext (str, optional): Extension of the written images (a rename
            only). None keeps the source's.
        read_mask (Callable, optional): ``read_mask(path)`` gives the array
            written for each mask.
    """
    tops = dict.fromkeys(s.split('/')[0] for s in splits)
    existing = [s for s in tops if osp.exists(osp.join(args.out, s))]
    if existing and not args.overwrite:
        raise LayoutError(
            f'{args.out!r} already holds {existing}; pass --overwrite to '
            'replace these folders and splits/ (nothing else in it is '
            'touched).')
    if existing:
        for folder in existing + ['splits']:
            shutil.rmtree(osp.join(args.out, folder), ignore_errors=True)
    print(header)

    def place(src, dst):
        if args.symlink:
            os.symlink(osp.abspath(src), dst)
        else:
            shutil.copyfile(src, dst)

    for split, pairs in ((s, p) for s, p in splits.items() if p):
        folder = osp.join(args.out, split)
        os.makedirs(osp.join(folder, 'images'), exist_ok=True)
        os.makedirs(osp.join(folder, 'masks'), exist_ok=True)
        for stem, img, mask in pairs:
            ext = img_ext or osp.splitext(img)[1].lower()
            place(img, osp.join(folder, 'images', stem + ext))
            src_ext = osp.splitext(mask)[1].lower()
            dst_ext = mask_ext or src_ext
            dst = osp.join(folder, 'masks', stem + dst_ext)
            if read_mask is None and (src_ext == dst_ext or {src_ext, dst_ext}
                                      <= {'.tif', '.tiff'}):
                place(mask, dst)
                continue
            import cv2
            data = read_mask(mask) if read_mask else cv2.imread(
                mask, cv2.IMREAD_UNCHANGED)
            if data is None or not cv2.imwrite(dst, data):
                raise LayoutError(f'cannot convert {mask!r} to {dst!r}')
        os.makedirs(osp.join(args.out, 'splits'), exist_ok=True)
        list_name = split.replace('/', '_') + '.txt'
        with open(osp.join(args.out, 'splits', list_name), 'w') as f:
            f.writelines(stem + '\n' for stem, _, _ in pairs)
        print(f'{split}: {len(pairs)} images '
              f'{"symlinked" if args.symlink else "copied"} to {folder}/'
              '{images,masks}')
        note = count_note(split, len(pairs), (counts or {}).get(split))
        if note:
            print(note)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not in [0, 1)')
    return value


def base_parser(description: str,
                default_out: Optional[str] = None,
                **fractions: float) -> argparse.ArgumentParser:
    """The arguments every converter has.

    Args:
        default_out (str, optional): Default of ``--out``; given for the
            converters of one official download, which then take ``src``.
        fractions: Defaults of ``--<name>-fraction`` of a random split
            (with ``--seed``).
    """
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if default_out:
        parser.add_argument('src', help='the unpacked official download')
    parser.add_argument(
        '--out',
        default=default_out,
        required=not default_out,
        help='output folder' +
        (f' (default {default_out})' if default_out else ''))
    parser.add_argument(
        '--symlink',
        action='store_true',
        help='symlink the images (and unchanged masks) instead of copying')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace split folders written before')
    for name, default in fractions.items():
        parser.add_argument(
            f'--{name}-fraction',
            type=_fraction,
            default=default,
            help=f'fraction for the {name} split (default {default})')
    if fractions:
        parser.add_argument(
            '--seed',
            type=int,
            default=0,
            help='seed of the random split (default 0)')
    return parser


def run_cli(main: Callable, argv=None) -> int:
    """Run a converter's ``main``; print a LayoutError as one message."""
    try:
        main(argv)
    except LayoutError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0
