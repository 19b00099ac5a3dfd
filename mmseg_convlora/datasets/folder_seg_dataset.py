"""Images and masks in two folders, checked when the dataset is built."""
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .pair_checks import (check_pairs, list_files, mask_suffix_hint,
                          parallel_map, report_unused)
from .transforms.check_image import check_settings


@DATASETS.register_module()
class FolderSegDataset(BaseSegDataset):
    """Images and masks matched by path, subfolders included::

        data_root/<img_path>/[sub/]x{img_suffix}
        data_root/<seg_map_path>/[sub/]x{seg_map_suffix}

    The checks it runs when built are listed in ``docs/own_data.md``.

    Args:
        img_suffix (str | tuple[str]): Image extension(s).
        seg_map_suffix (str): Mask suffix, e.g. ``'_mask.png'``.
        exif_orientation (str): ``'ignore'`` or ``'apply'``.
        bit_depth (int, optional): Bit depth of 16-bit images.
        **kwargs: See :class:`mmseg.datasets.BaseSegDataset`.
    """

    def __init__(self,
                 img_suffix: Union[str, Sequence[str]] = '.jpg',
                 seg_map_suffix: str = '.png',
                 exif_orientation: str = 'ignore',
                 bit_depth: Optional[int] = None,
                 **kwargs):
        check_settings(exif_orientation, bit_depth, type(self).__name__)
        self.exif_orientation = exif_orientation
        self.bit_depth = bit_depth
        if not isinstance(img_suffix, str):
            img_suffix = tuple(img_suffix)
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = self._list_pairs()
        name = f'{type(self).__name__} ({self.data_prefix.get("img_path")!r})'
        check_pairs(name, data_list, self.exif_orientation, self.bit_depth)
        masks = [d for d in data_list if d.get('seg_map_path')]
        if masks:
            self.check_masks(masks)
        for info in data_list:
            info['exif_orientation'] = self.exif_orientation
        return data_list

    def _list_pairs(self) -> List[dict]:
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path')
        suffixes = (self.img_suffix, ) if isinstance(self.img_suffix,
                                                     str) else self.img_suffix
        layout = (f'expected images "*{"|".join(suffixes)}" in {img_dir!r} '
                  f'and masks "*{self.seg_map_suffix}" in {ann_dir!r}, '
                  'matched by their path below these folders')
        if self.ann_file:
            data_list = super().load_data_list()
        elif not osp.isdir(img_dir):
            raise FileNotFoundError(
                f'{type(self).__name__}: image folder {img_dir!r} does not '
                f'exist ({layout}). Check data_root and data_prefix in the '
                'config, or run a converter in tools/dataset_converters/.')
        else:
            same = ann_dir and osp.normpath(ann_dir) == osp.normpath(img_dir)
            exts, data_list = [s.lower() for s in suffixes], []
            for rel in list_files(img_dir):
                stem, ext = osp.splitext(rel)
                if ext.lower() not in exts or (same and rel.endswith(
                        self.seg_map_suffix)):
                    continue
                info = dict(
                    img_path=osp.join(img_dir, rel),
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[])
                if ann_dir is not None:
                    info['seg_map_path'] = osp.join(ann_dir,
                                                    stem + self.seg_map_suffix)
                data_list.append(info)
        if not data_list:
            raise FileNotFoundError(
                f'{type(self).__name__}: no images found in {img_dir!r} '
                f'({layout}).')
        missing = [
            d['seg_map_path'] for d in data_list
            if d.get('seg_map_path') and not osp.isfile(d['seg_map_path'])
        ]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} of {len(data_list)} '
                f'images have no mask, e.g. {missing[:3]} ({layout}).' +
                mask_suffix_hint(ann_dir, missing, self.seg_map_suffix,
                                 img_dir))
        if not self.ann_file:
            report_unused(
                type(self).__name__, img_dir, ann_dir, data_list, suffixes,
                self.seg_map_suffix)
        return data_list

    def check_masks(self, data_list: List[dict]) -> None:
        """Refuse masks with labels that are neither a class (after
        ``reduce_zero_label`` and ``label_map``) nor ``ignore_index``."""
        classes = self.metainfo.get('classes')
        if not classes:
            return
        num_classes, lut = len(classes), np.arange(256, dtype=np.int64)
        if self.reduce_zero_label:
            lut = np.where(lut == 0, 255, lut - 1)
            lut[lut == 254] = 255
        reduced = lut.copy()
        for old, new in (self.label_map or {}).items():
            lut[reduced == old] = new

        def bad_values(info):
            from PIL import Image
            path = info['seg_map_path']
            mask = np.asarray(Image.open(path)).astype(np.int64)
            if mask.ndim != 2:
                return path, f'is a colour image {mask.shape}'
            values = np.unique(mask)
            if values.max() > 255:
                return path, f'holds values up to {values.max()}'
            labels = lut[values]
            bad = values[(labels >= num_classes)
                         & (labels != self.ignore_index)]
            return path, f'holds label values {bad[:10].tolist()}' \
                if bad.size else None

        bad = [(p, why) for p, why in parallel_map(bad_values, data_list)
               if why]
        if bad:
            raise ValueError(
                f'{type(self).__name__}: {len(bad)} of {len(data_list)} '
                f'masks are not class-index images of {num_classes} classes '
                f'(ignore index {self.ignore_index}): e.g. {bad[0][0]!r} '
                f'{bad[0][1]}. Check classes, reduce_zero_label and label_map,'
                ' or convert colour masks to class-index PNGs.')
