"""Shared helpers of the dataset converters (no mmseg import: fast to run).

Every converter writes ``OUT/<split>/{images,masks}/`` and
``OUT/splits/<split>.txt`` (``<split>`` may be nested, e.g. ``test/Kvasir``).
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')

Pair = Tuple[str, str, str]  # (stem, image path, mask path)


class LayoutError(Exception):
    """The source folder is not the expected dataset layout."""


def check_entries(root: str, entries: Sequence[str], dataset: str,
                  layout: str) -> None:
    """Refuse ``root`` unless every relative path in ``entries`` exists."""
    if not osp.isdir(root):
        raise LayoutError(f'{root!r} is not a folder. Expected the {dataset} '
                          f'download:\n{layout}')
    missing = [e for e in entries if not osp.exists(osp.join(root, e))]
    # name a missing folder once, not each entry below it
    missing = [
        e for e in missing
        if not any(e.startswith(m.rstrip('/') + '/') for m in missing)
    ]
    if missing:
        present = sorted(os.listdir(root))[:12]
        raise LayoutError(
            f'{root!r} does not look like the {dataset} download: missing '
            f'{", ".join(repr(m) for m in missing)} (found: {present}). '
            f'Expected:\n{layout}')


def first_existing(root: str, candidates: Sequence[str]) -> Optional[str]:
    """The first of ``candidates`` (relative paths) that is a folder."""
    for cand in candidates:
        if osp.isdir(osp.join(root, cand)):
            return cand
    return None


def list_files(folder: str,
               exts: Sequence[str] = IMG_EXTS,
               strip: str = '',
               skip: Sequence[str] = ()) -> Dict[str, str]:
    """``{stem: path}`` of the files in ``folder`` with one of ``exts``.

    Args:
        strip (str): Suffix removed from the stem (e.g. '_segmentation').
        skip (Sequence[str]): Stem endings to ignore (e.g. '_superpixels').
    """
    found: Dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in exts or name.startswith('.'):
            continue
        if any(stem.endswith(s) for s in skip):
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
    """Match images and masks by stem; refuse images without a mask."""
    images = list_files(img_dir, img_exts, skip=img_skip)
    masks = list_files(mask_dir, strip=mask_strip)
    if not images:
        raise LayoutError(f'no images ({"/".join(img_exts)}) in {img_dir!r}')
    missing = sorted(set(images) - set(masks))
    if missing:
        raise LayoutError(
            f'{len(missing)} of {len(images)} images in {img_dir!r} have no '
            f'mask in {mask_dir!r}, e.g. {missing[:3]}')
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def random_split(pairs: Sequence[Pair], fraction: float,
                 seed: int) -> Tuple[List[Pair], List[Pair]]:
    """Split off ``round(fraction * n)`` items (at least 1 when fraction >
    0), chosen with ``np.random.RandomState(seed)`` from the stem-sorted
    list, so the split depends only on the file names and the seed.

    Returns:
        (rest, picked), each sorted by stem.
    """
    if not 0 < fraction < 1:
        raise ValueError(f'split fraction must be in (0, 1), got {fraction}')
    items = sorted(pairs)
    n_pick = max(1, int(round(fraction * len(items))))
    if n_pick >= len(items):
        raise LayoutError(f'cannot split {len(items)} images with fraction '
                          f'{fraction}: nothing would be left')
    order = np.random.RandomState(seed).permutation(len(items))
    picked = set(order[:n_pick].tolist())
    rest = [p for i, p in enumerate(items) if i not in picked]
    chosen = [p for i, p in enumerate(items) if i in picked]
    return rest, chosen


def _place(src: str, dst: str, symlink: bool) -> None:
    if symlink:
        os.symlink(osp.abspath(src), dst)
    else:
        shutil.copyfile(src, dst)


def write_split(pairs: Sequence[Pair],
                out: str,
                split: str,
                symlink: bool,
                mask_ext: Optional[str] = '.png',
                img_ext: Optional[str] = None,
                convert_mask: Optional[Callable] = None) -> str:
    """Write ``out/<split>/{images,masks}`` and ``out/splits/<split>.txt``.

    Args:
        mask_ext (str, optional): Extension of the written masks. A source
            mask with another extension is re-encoded (lossless PNG) unless
            only the name differs in case / tif-vs-tiff. None keeps it.
        img_ext (str, optional): Extension of the written images (renaming
            only, e.g. '.tif' -> '.tiff'). None keeps the source's.
        convert_mask (Callable, optional): ``convert_mask(data, mask_path,
            image_path)`` turns the decoded mask (as ``cv2.imread(...,
            IMREAD_UNCHANGED)`` gives it) into what is written.

    Returns:
        str: A line saying what was written.
    """
    img_dir = osp.join(out, split, 'images')
    mask_dir = osp.join(out, split, 'masks')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    for stem, img, mask in pairs:
        ext = img_ext or osp.splitext(img)[1].lower()
        _place(img, osp.join(img_dir, stem + ext), symlink)
        src_ext = osp.splitext(mask)[1].lower()
        dst_ext = mask_ext or src_ext
        dst = osp.join(mask_dir, stem + dst_ext)
        same = {src_ext, dst_ext} <= {'.tif', '.tiff'} or src_ext == dst_ext
        if same and convert_mask is None:
            _place(mask, dst, symlink)
        else:
            import cv2
            data = cv2.imread(mask, cv2.IMREAD_UNCHANGED)
            if data is None:
                raise LayoutError(f'cannot read mask {mask!r}')
            if convert_mask is not None:
                data = convert_mask(data, mask, img)
            if not cv2.imwrite(dst, data):
                raise OSError(f'cannot write {dst!r}')
    os.makedirs(osp.join(out, 'splits'), exist_ok=True)
    list_name = split.replace('/', '_') + '.txt'
    with open(osp.join(out, 'splits', list_name), 'w') as f:
        f.writelines(stem + '\n' for stem, _, _ in pairs)
    how = 'symlinked' if symlink else 'copied'
    return (f'{split}: {len(pairs)} images {how} to '
            f'{osp.join(out, split)}/{{images,masks}}')


def prepare_out(out: str, splits: Sequence[str], overwrite: bool) -> None:
    """Refuse to mix a new conversion into an old one unless asked."""
    existing = [s for s in splits if osp.exists(osp.join(out, s))]
    if existing and not overwrite:
        raise LayoutError(
            f'{out!r} already holds {existing}; pass --overwrite to replace '
            'these folders and splits/ (nothing else in it is touched).')
    for split in existing:
        shutil.rmtree(osp.join(out, split))
    if existing:
        splits_dir = osp.join(out, 'splits')
        if osp.isdir(splits_dir):
            shutil.rmtree(splits_dir)


def note_count(split: str, found: int, expected: Optional[int]) -> str:
    if expected is None or found == expected:
        return ''
    return (f'  note: the official {split} has {expected} images, found '
            f'{found} (an incomplete download or another version?)')


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='the unpacked official download')
    parser.add_argument(
        '--out',
        default=default_out,
        help=f'output folder (default {default_out})')
    parser.add_argument(
        '--symlink',
        action='store_true',
        help='symlink the files instead of copying them')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace split folders written before')
    return parser


def add_split_args(parser: argparse.ArgumentParser,
                   val_fraction: float,
                   seed: int = 0) -> None:
    parser.add_argument(
        '--val-fraction',
        type=float,
        default=val_fraction,
        help='fraction of the training images held out for validation '
        f'(default {val_fraction})')
    parser.add_argument(
        '--seed',
        type=int,
        default=seed,
        help=f'seed of the random split (default {seed})')


def run_cli(main: Callable, argv=None) -> int:
    """Run a converter's ``main``; print a LayoutError as one message."""
    try:
        main(argv)
    except LayoutError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0
