"""Base class of the binary (foreground/background) datasets."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .transforms.binary_loading import MASK_ENCODINGS
from .transforms.image_loading import EXIF_MODES
from .unused_files import report_unused_files


@DATASETS.register_module()
class BinarySegDataset(BaseSegDataset):
    """Images and binary masks in two folders, matched by file stem.

    ::

        data_root/
          <img_path>/xxx{img_suffix}
          <seg_map_path>/xxx{seg_map_suffix}

    Labels are 0 (background) and 1 (foreground), 255 for void pixels;
    load masks with :class:`LoadBinaryAnnotations`, which converts the
    stored encoding (``mask_encoding``) to them. An empty or missing
    folder, or an image without its mask, is an error naming the path,
    never a silently smaller dataset; files that are not used (other
    suffixes, masks without an image) are counted in a warning.

    Args:
        img_suffix (str | tuple[str]): Image extension(s).
        seg_map_suffix (str): Mask extension.
        mask_encoding (str): How the masks store the labels: ``'auto'``
            (default: 0/1, 0/255 or anti-aliased/JPEG 0/255, refusing the
            ambiguous 0/1/255), ``'0-255'`` or ``'0-1'`` (255 = void); see
            :func:`binarize_mask`.
        void_value (int, optional): Stored value of void pixels (loaded as
            the ignore index 255). Default: 255 for ``'0-1'``, none
            otherwise.
        exif_orientation (str): ``'ignore'`` (default: images read as
            stored, like masks) or ``'apply'`` (images rotated as displayed,
            for masks drawn on the displayed image); see
            :func:`decode_image`.
        **kwargs: See :class:`mmseg.datasets.BaseSegDataset`.
    """

    # foreground crimson: overlays stay readable, and so does the white
    # class name mmseg's visualizer writes on it
    METAINFO = dict(
        classes=('background', 'foreground'),
        palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix: Union[str, Sequence[str]] = '.jpg',
                 seg_map_suffix: str = '.png',
                 mask_encoding: str = 'auto',
                 void_value: Optional[int] = None,
                 exif_orientation: str = 'ignore',
                 **kwargs):
        if mask_encoding not in MASK_ENCODINGS:
            raise ValueError(f'{type(self).__name__}: mask_encoding must be '
                             f'one of {MASK_ENCODINGS}, got '
                             f'{mask_encoding!r}.')
        if exif_orientation not in EXIF_MODES:
            raise ValueError(f'{type(self).__name__}: exif_orientation must '
                             f'be one of {EXIF_MODES}, got '
                             f'{exif_orientation!r}.')
        self.mask_encoding = mask_encoding
        self.void_value = void_value
        self.exif_orientation = exif_orientation
        if not isinstance(img_suffix, str):
            img_suffix = tuple(img_suffix)
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.ann_file:
            data_list = super().load_data_list()
            for info in data_list:
                info.update(
                    mask_encoding=self.mask_encoding,
                    void_value=self.void_value,
                    exif_orientation=self.exif_orientation)
            return data_list
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path')
        layout = (f'expected images "*{self.img_suffix}" in {img_dir!r} and '
                  f'masks "*{self.seg_map_suffix}" in {ann_dir!r}')
        if not osp.isdir(img_dir):
            raise FileNotFoundError(
                f'{type(self).__name__}: image folder {img_dir!r} does not '
                f'exist ({layout}). Check data_root and data_prefix in the '
                'config, or run the dataset converter in '
                'tools/dataset_converters/.')
        suffixes = (self.img_suffix, ) if isinstance(self.img_suffix,
                                                     str) else self.img_suffix
        data_list, missing = [], []
        for name in sorted(os.listdir(img_dir)):
            stem, ext = osp.splitext(name)
            if ext.lower() not in [s.lower() for s in suffixes]:
                continue
            info = dict(
                img_path=osp.join(img_dir, name),
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[],
                mask_encoding=self.mask_encoding,
                void_value=self.void_value,
                exif_orientation=self.exif_orientation)
            if ann_dir is not None:
                seg_path = osp.join(ann_dir, stem + self.seg_map_suffix)
                if not osp.isfile(seg_path):
                    missing.append(seg_path)
                info['seg_map_path'] = seg_path
            data_list.append(info)
        if not data_list:
            raise FileNotFoundError(
                f'{type(self).__name__}: no images found in {img_dir!r} '
                f'({layout}).')
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} of {len(data_list)} '
                f'images have no mask, e.g. {missing[:3]} ({layout}).' +
                mask_suffix_hint(ann_dir, missing, self.seg_map_suffix,
                                 img_dir))
        report_unused_files(
            type(self).__name__, img_dir, ann_dir, [
                p for d in data_list
                for p in (d['img_path'], d.get('seg_map_path')) if p
            ], suffixes, self.seg_map_suffix)
        return data_list


def mask_suffix_hint(ann_dir: str, missing: List[str], seg_map_suffix: str,
                     img_dir: str) -> str:
    """The ``seg_map_suffix`` under which the missing masks exist, if one
    does for most of them, as advice (else '')."""
    if not osp.isdir(ann_dir):
        return ''
    images = set(os.listdir(img_dir)) if osp.isdir(img_dir) else set()
    names = [n for n in os.listdir(ann_dir) if n not in images]
    counts: dict = {}
    mask_words = ('mask', 'Mask', 'gt', 'GT', 'label')
    for path in missing[:100]:
        stem = osp.basename(path)[:-len(seg_map_suffix)]
        for suffix in {n[len(stem):] for n in names if n.startswith(stem)}:
            if suffix and suffix[0] in '._-' or suffix.startswith(mask_words):
                counts[suffix] = counts.get(suffix, 0) + 1
    if not counts:
        return ''
    suffix, found = max(counts.items(), key=lambda kv: kv[1])
    if found * 2 < min(len(missing), 100):
        return ''
    return (f' The masks seem to be named <image name>{suffix}: set '
            f"seg_map_suffix='{suffix}' in the dataset config (it is "
            f'{seg_map_suffix!r}).')
