"""Base class of the binary (foreground/background) datasets."""
from typing import List, Optional

from mmengine.fileio import get
from mmseg.registry import DATASETS

from .folder_seg_dataset import FolderSegDataset
from .pair_checks import parallel_map, warn
from .transforms.binary_loading import (check_encoding, decide_encoding,
                                        label_lut, mask_kind, read_binary_mask,
                                        value_counts)


@DATASETS.register_module()
class BinarySegDataset(FolderSegDataset):
    """Images and binary masks (0 background, 1 foreground, 255 void).

    Every mask is read once when built: ``'auto'`` is decided for the whole
    dataset and non-binary or disagreeing masks are refused.

    Args:
        mask_encoding (str): ``'auto'``, ``'0-255'`` or ``'0-1'``.
        void_value (int, optional): Stored value of void pixels.
        invert_masks (bool): The stored low value (0) is the object.
        **kwargs: See :class:`FolderSegDataset`.
    """

    METAINFO = dict(
        classes=('background', 'foreground'),
        palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 mask_encoding: str = 'auto',
                 void_value: Optional[int] = None,
                 invert_masks: bool = False,
                 **kwargs):
        self.mask_encoding = check_encoding(mask_encoding,
                                            f'{type(self).__name__}: ')
        self.void_value = void_value
        self.invert_masks = bool(invert_masks)
        super().__init__(**kwargs)

    def check_masks(self, data_list: List[dict]) -> None:
        paths = [d['seg_map_path'] for d in data_list]

        def read(path):
            mask = read_binary_mask(get(path), path)
            return value_counts(mask) + (65535
                                         if mask.dtype.itemsize > 1 else 255, )

        counts = parallel_map(read, paths)
        encoding = self.mask_encoding
        if encoding == 'auto':
            encoding = decide_encoding([
                (p, mask_kind(v[v != self.void_value], full))
                for p, (v, _, full) in zip(paths, counts)
            ])
        fractions, errors = [], []
        for path, (values, num, full) in zip(paths, counts):
            try:
                labels = label_lut(values, num, full, path, encoding,
                                   self.void_value, self.invert_masks)[values]
            except ValueError as err:
                errors.append(str(err))
                continue
            valid = num[labels != 255].sum()
            fractions.append(num[labels == 1].sum() / valid if valid else 0)
        if errors:
            raise ValueError(f'{type(self).__name__}: {len(errors)} of '
                             f'{len(paths)} masks refused. {errors[0]}')
        if min(fractions) > 0.5:
            warn(f'{type(self).__name__}: the foreground covers more than '
                 f'half of every mask (at least {min(fractions):.0%}) in '
                 f'{self.data_prefix.get("seg_map_path")!r}. If the object '
                 'is the dark part of the masks, set invert_masks=True on '
                 'the dataset.')
        for info in data_list:
            info.update(
                mask_encoding=encoding,
                void_value=self.void_value,
                invert_masks=self.invert_masks)
