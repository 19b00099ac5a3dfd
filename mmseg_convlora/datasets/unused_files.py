"""Saying which files of a dataset's folders are not used, and why."""
import logging
import os
import os.path as osp
from typing import Iterable, List, Optional

from mmengine.logging import print_log

__all__ = ['report_unused_files']


def _listing(folder: Optional[str]) -> List[str]:
    if not folder or not osp.isdir(folder):
        return []
    return sorted(
        n for n in os.listdir(folder)
        if not n.startswith('.') and osp.isfile(osp.join(folder, n)))


def report_unused_files(dataset: str, img_dir: str, ann_dir: Optional[str],
                        used: Iterable[str], img_suffixes: Iterable[str],
                        seg_map_suffix: str) -> dict:
    """Log a warning naming the files a dataset did not pick up.

    Two kinds are counted: files in the image folder without one of the
    image suffixes (e.g. ``.png`` images in a ``.jpg`` dataset), and masks
    without an image (whose image is missing or has another suffix). Hidden
    files are not counted.

    Args:
        dataset (str): Dataset name for the message.
        img_dir (str): The image folder.
        ann_dir (str, optional): The mask folder (may equal ``img_dir``).
        used (Iterable[str]): Paths of the images and masks the dataset
            lists.
        img_suffixes (Iterable[str]): The image suffixes looked for.
        seg_map_suffix (str): The mask suffix.

    Returns:
        dict: ``other_suffix`` and ``masks_without_image``, lists of paths.
    """
    used = {osp.normpath(p) for p in used}
    suffixes = tuple(s.lower() for s in img_suffixes)
    other = [
        osp.join(img_dir, n) for n in _listing(img_dir)
        if not n.lower().endswith(suffixes)
        and osp.normpath(osp.join(img_dir, n)) not in used
    ]
    orphans = []
    if ann_dir is not None:
        orphans = [
            osp.join(ann_dir, n) for n in _listing(ann_dir)
            if n.endswith(seg_map_suffix)
            and osp.normpath(osp.join(ann_dir, n)) not in used
        ]
    if ann_dir is not None and osp.normpath(ann_dir) == osp.normpath(img_dir):
        other = [p for p in other if not p.endswith(seg_map_suffix)]
    parts = []
    if other:
        parts.append(
            f'{len(other)} file(s) in {img_dir!r} without the image suffix '
            f'{"/".join(suffixes)}, e.g. {other[:3]} (set img_suffix to read '
            'them)')
    if orphans:
        parts.append(
            f'{len(orphans)} mask(s) in {ann_dir!r} without an image, e.g. '
            f'{orphans[:3]}')
    if parts:
        print_log(
            f'{dataset}: not used: ' + '; '.join(parts) + '.',
            logger='current',
            level=logging.WARNING)
    return dict(other_suffix=other, masks_without_image=orphans)
