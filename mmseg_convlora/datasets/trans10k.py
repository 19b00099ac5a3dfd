"""Trans10K v1 (TransLab) and v2 (Trans2Seg) transparent-object datasets."""
import os.path as osp
from typing import List, Optional, Sequence

import mmengine.fileio as fileio
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .pair_checks import check_pairs, report_unused
from .transforms.trans10k_loading import TRANS10K_METAINFO, TRANS10K_V1_COLORS

_MASK_DIRS = {'v1': 'masks', 'v2': 'masks_12'}
_SUBSETS = ('easy', 'hard')

_LAYOUTS = {
    'v1': ('Trans10K/<split>/[easy/|hard/]{images/xxx.jpg,'
           'masks/xxx_mask.png}'),
    'v2': 'Trans10K_cls12/<split>/{images/xxx.jpg,masks_12/xxx_mask.png}',
}


@DATASETS.register_module()
class Trans10KDataset(BaseSegDataset):
    """Trans10K v1 (3 classes, colour masks) or v2 (12 classes, ``masks_12``)
    in the official layout; load masks with :class:`LoadTrans10KAnnotations`.

    Args:
        version (str): 'v1' or 'v2'.
        split (str): Sub-folder of ``data_root`` ('train', 'validation',
            'test'); ignored when ``data_prefix`` names folders.
        subsets (Sequence[str], optional): v1 levels. Default both.
        data_prefix (dict, optional): ``img_path`` and ``seg_map_path``
            relative to ``data_root``, instead of ``split``.
        **kwargs: See :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = TRANS10K_METAINFO['v1']

    def __init__(self,
                 version: str = 'v1',
                 split: str = 'train',
                 subsets: Optional[Sequence[str]] = None,
                 data_prefix: Optional[dict] = None,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '_mask.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if version not in TRANS10K_METAINFO:
            raise ValueError(
                f"Trans10K version must be 'v1' or 'v2', got {version!r}")
        if reduce_zero_label:
            raise ValueError('reduce_zero_label=True makes no sense for '
                             'Trans10K: 0 is the real background class.')
        if kwargs.get('ann_file'):
            raise ValueError('Trans10KDataset reads no ann_file; use split, '
                             'subsets or data_prefix.')
        unknown = set(subsets or ()) - set(_SUBSETS)
        if unknown:
            raise ValueError(f'Unknown Trans10K subsets {sorted(unknown)}; '
                             f'choose from {_SUBSETS}.')
        self.version = version
        self.split = split
        self.subsets = tuple(subsets) if subsets is not None else _SUBSETS
        self.METAINFO = TRANS10K_METAINFO[version]
        self._use_split = not (data_prefix and data_prefix.get('img_path'))
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            data_prefix=data_prefix or dict(img_path='', seg_map_path=''),
            **kwargs)

    def _version_class(self) -> type:
        # mmengine reads METAINFO in classmethods: give them this version's
        return type(f'Trans10K{self.version.upper()}Meta', (BaseSegDataset, ),
                    {'METAINFO': TRANS10K_METAINFO[self.version]})

    def _load_metainfo(self, metainfo=None) -> dict:
        return self._version_class()._load_metainfo(metainfo)

    def get_label_map(self, new_classes=None):
        return self._version_class().get_label_map(new_classes)

    @property
    def mask_colours(self) -> Optional[List[tuple]]:
        """The RGB colour of each class id in v1 masks; None for v2."""
        if self.version != 'v1':
            return None
        first = {i: c for c, i in reversed(TRANS10K_V1_COLORS.items())}
        return [first[i] for i in sorted(first)]

    def _layout_hint(self) -> str:
        return (f'Expected the Trans10K {self.version} layout '
                f'{_LAYOUTS[self.version]} (docs/own_data.md).')

    def _isdir(self, path: str) -> bool:
        return fileio.isdir(path, backend_args=self.backend_args)

    def _dir_pairs(self) -> List[tuple]:
        """(image dir, mask dir, subset) triples to read."""
        if not self._use_split:
            return [(self.data_prefix['img_path'],
                     self.data_prefix.get('seg_map_path')
                     or self.data_prefix['img_path'], None)]
        if not self.data_root:
            raise ValueError('Trans10KDataset needs data_root (or '
                             'data_prefix with img_path and seg_map_path).')
        if not self._isdir(self.data_root):
            raise FileNotFoundError(
                f'Trans10K data_root {self.data_root} does not exist or is '
                f'not a folder. {self._layout_hint()}')
        split_dir = osp.join(self.data_root, self.split)
        mask_name = _MASK_DIRS[self.version]

        def triple(folder, subset=None):
            return (osp.join(folder, 'images'), osp.join(folder,
                                                         mask_name), subset)

        if self._isdir(osp.join(split_dir, 'images')):
            return [triple(split_dir)]
        found = [
            s for s in self.subsets if self.version == 'v1'
            and self._isdir(osp.join(split_dir, s, 'images'))
        ]
        if found:
            return [triple(osp.join(split_dir, s), s) for s in found]
        raise FileNotFoundError(f'No images/ folder in {split_dir}. '
                                f'{self._layout_hint()}')

    def load_data_list(self) -> List[dict]:
        data_list = []
        for img_dir, mask_dir, subset in self._dir_pairs():
            if not self._isdir(mask_dir):
                raise FileNotFoundError(
                    f'Trans10K mask folder {mask_dir} (for images in '
                    f'{img_dir}) does not exist. {self._layout_hint()}')
            names = sorted(
                fileio.list_dir_or_file(
                    img_dir,
                    list_dir=False,
                    suffix=self.img_suffix,
                    recursive=True,
                    backend_args=self.backend_args))
            if not names:
                raise FileNotFoundError(
                    f'No *{self.img_suffix} images in {img_dir}. '
                    f'{self._layout_hint()}')
            missing = []
            for name in names:
                stem = name[:-len(self.img_suffix)]
                seg_path = osp.join(mask_dir, stem + self.seg_map_suffix)
                if not fileio.exists(seg_path, backend_args=self.backend_args):
                    missing.append(seg_path)
                    continue
                data_list.append(
                    dict(
                        img_path=osp.join(img_dir, name),
                        seg_map_path=seg_path,
                        label_map=self.label_map,
                        reduce_zero_label=self.reduce_zero_label,
                        seg_fields=[],
                        trans10k_version=self.version,
                        subset=subset))
            if missing:
                raise FileNotFoundError(
                    f'{len(missing)} image(s) in {img_dir} have no mask, e.g. '
                    f'{missing[:5]} (image xxx{self.img_suffix} pairs with '
                    f'mask xxx{self.seg_map_suffix}). {self._layout_hint()}')
            if '://' not in str(img_dir):
                report_unused(f'Trans10KDataset ({self.version})', img_dir,
                              mask_dir, data_list, (self.img_suffix, ),
                              self.seg_map_suffix)
        if '://' not in str(self.data_root):
            check_pairs(f'Trans10KDataset ({self.version}, {self.split})',
                        data_list)
        return data_list
