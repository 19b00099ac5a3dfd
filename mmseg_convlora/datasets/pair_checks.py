"""Checks of a dataset's image/mask pairs when it is built: file listing,
sizes from the file headers, EXIF orientation, 16-bit depth, mask values."""
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

from .transforms.check_image import (depth_holding, exif_message,
                                     orientation_of, png_significant_bits,
                                     unreadable_error, warn)


def _examples(paths: Sequence[str], n: int = 3) -> str:
    more = f' and {len(paths) - n} more' if len(paths) > n else ''
    return ', '.join(repr(p) for p in paths[:n]) + more


def list_files(folder: str) -> List[str]:
    """Paths relative to ``folder`` of its files, subfolders included
    (hidden ones left out), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        rel = osp.relpath(root, folder)
        found += [
            osp.normpath(osp.join(rel, f)) for f in files
            if not f.startswith('.')
        ]
    return sorted(found)


def report_unused(dataset: str, img_dir: str, ann_dir: Optional[str],
                  data_list: List[dict], img_suffixes: Sequence[str],
                  seg_map_suffix: str) -> None:
    """Warn about files in the folders that ``data_list`` does not read:
    other suffixes in ``img_dir`` and masks without an image."""
    used = {
        osp.normpath(d[k])
        for d in data_list
        for k in ('img_path', 'seg_map_path') if d.get(k)
    }
    same = ann_dir is not None and osp.normpath(ann_dir) == osp.normpath(
        img_dir)
    other = [
        osp.join(img_dir, n) for n in list_files(img_dir)
        if not n.lower().endswith(tuple(s.lower() for s in img_suffixes))
        and osp.normpath(osp.join(img_dir, n)) not in used
        and not (same and n.endswith(seg_map_suffix))
    ]
    orphans = [] if ann_dir is None or not osp.isdir(ann_dir) else [
        osp.join(ann_dir, n) for n in list_files(ann_dir)
        if n.endswith(seg_map_suffix)
        and osp.normpath(osp.join(ann_dir, n)) not in used
    ]
    parts = []
    if other:
        parts.append(f'{len(other)} file(s) in {img_dir!r} without the image '
                     f'suffix {"/".join(img_suffixes)}: {_examples(other)} '
                     '(set img_suffix to read them)')
    if orphans:
        parts.append(f'{len(orphans)} mask(s) in {ann_dir!r} without an '
                     f'image: {_examples(orphans)}')
    if parts:
        warn(f'{dataset}: not used: ' + '; '.join(parts) + '.')


def mask_suffix_hint(ann_dir: str, missing: List[str], seg_map_suffix: str,
                     img_dir: str) -> str:
    """Advice naming the mask suffix under which most missing masks exist
    (e.g. ``'_mask.png'``), or ''."""
    if not osp.isdir(ann_dir):
        return ''
    images = set(os.listdir(img_dir)) if osp.isdir(img_dir) else set()
    names = [n for n in os.listdir(ann_dir) if n not in images]
    counts: dict = {}
    words = ('mask', 'Mask', 'gt', 'GT', 'label')
    for path in missing[:100]:
        stem = osp.basename(path)[:-len(seg_map_suffix)]
        for suffix in {n[len(stem):] for n in names if n.startswith(stem)}:
            if suffix and (suffix[0] in '._-' or suffix.startswith(words)):
                counts[suffix] = counts.get(suffix, 0) + 1
    if not counts:
        return ''
    suffix, found = max(counts.items(), key=lambda kv: kv[1])
    if found * 2 < min(len(missing), 100):
        return ''
    return (f' The masks seem to be named <image name>{suffix}: set '
            f"seg_map_suffix='{suffix}' in the dataset config (it is "
            f'{seg_map_suffix!r}).')


def image_header(path: str) -> Tuple[Tuple[int, int], int, int, Optional[int]]:
    """((width, height), EXIF orientation, bits per sample, PNG sBIT) of an
    image file from its header; a ValueError names unreadable files."""
    from PIL import Image
    try:
        with Image.open(path) as pil:
            size, mode = pil.size, pil.mode
            orientation = orientation_of(pil)
            bits = max(getattr(pil, 'tag_v2', {}).get(258, (8, )) or (8, ))
    except (OSError, SyntaxError, ValueError):  # PIL cannot read it: cv2?
        import cv2
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise unreadable_error(path, 'File')
        return (img.shape[1], img.shape[0]), 1, img.dtype.itemsize * 8, None
    head = b''
    if path.lower().endswith('.png'):
        with open(path, 'rb') as f:
            head = f.read(1 << 16)
    if mode.startswith('I;16'):
        bits = 16
    elif head and bits != 16:
        bits = head[24] if len(head) > 24 else 8  # IHDR bit depth
    sbit = png_significant_bits(head) if bits == 16 else None
    return size, orientation, bits, sbit


def parallel_map(func: Callable, items: Sequence) -> list:
    """``[func(x) for x in items]`` in threads (decoding releases the GIL)."""
    if len(items) < 8:
        return [func(x) for x in items]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(func, items))


def check_pairs(dataset: str,
                data_list: List[dict],
                exif_mode: str = 'ignore',
                bit_depth: Optional[int] = None) -> None:
    """Check every pair's sizes from the file headers (ValueError) and add
    ``img_orientation`` and, for 16-bit images, ``bit_depth`` to each item;
    warn once about EXIF orientations and derived depths."""

    def header(info):
        img = image_header(info['img_path'])
        seg = info.get('seg_map_path')
        return img, image_header(seg)[0] if seg else None

    headers = parallel_map(header, data_list)
    wrong, rotated, undeclared = [], [], []
    for info, ((size, orientation, bits, sbit),
               seg) in zip(data_list, headers):
        info['img_orientation'] = orientation
        if exif_mode == 'apply' and orientation in (5, 6, 7, 8):
            size = size[::-1]
        if seg is not None and tuple(seg) != tuple(size):
            wrong.append((info, size, seg))
        if orientation != 1:
            rotated.append(info['img_path'])
        if bits == 16:
            info['bit_depth'] = bit_depth or sbit
            if info['bit_depth'] is None:
                undeclared.append(info)
    if wrong:
        listed = '; '.join(
            f'{osp.basename(i["seg_map_path"])} {s[0]}x{s[1]} vs {z[0]}x{z[1]}'
            for i, z, s in wrong[:10]) + (' ...' if len(wrong) > 10 else '')
        info, size, seg = wrong[0]
        aspect = sum(
            abs(s[0] * size[1] - s[1] * size[0]) <= max(size)
            for _, size, s in wrong)
        raise ValueError(
            f'{dataset}: {len(wrong)} of {len(data_list)} masks differ in '
            f'size from their image, e.g. {info["seg_map_path"]!r} is '
            f'{seg[0]}x{seg[1]} but {info["img_path"]!r} is {size[0]}x'
            f"{size[1]} (WxH); {aspect} have the image's aspect ratio. "
            'Resize them with tools/dataset_converters/image_mask_folders.py'
            f' --resize-masks nearest, or fix the pairs: {listed}')
    if rotated:
        warn(
            exif_message(
                f'{dataset}: {len(rotated)} image(s) carry an EXIF '
                f'orientation ({_examples(rotated)})', exif_mode))
    if undeclared:
        import cv2
        top = max(
            parallel_map(
                lambda i: int(
                    cv2.imread(i['img_path'], cv2.IMREAD_UNCHANGED).max()),
                undeclared))
        depth = depth_holding(top)
        for info in undeclared:
            info['bit_depth'] = depth
        warn(f'{dataset}: {len(undeclared)} 16-bit image(s) declare no bit '
             f'depth (no PNG sBIT chunk): all are scaled as {depth}-bit, '
             f'which holds their largest value {top}. Set bit_depth on the '
             'dataset (the same for every split) to choose it.')
