"""The deprecated one-step image loader (``LoadImageFromFile`` and
``CheckImage``)."""
from typing import Optional

import cv2
from mmcv.transforms import LoadImageFromFile
from mmseg.registry import TRANSFORMS

from .check_image import CheckImage, unreadable_error, warn_once


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """Deprecated: ``LoadImageFromFile(color_type='unchanged', **kwargs)``
    then ``CheckImage(exif_orientation, bit_depth)``."""

    def __init__(self,
                 exif_orientation: Optional[str] = None,
                 bit_depth: Optional[int] = None,
                 **kwargs):
        warn_once(
            'LoadImageChecked', 'LoadImageChecked is deprecated: use '
            "dict(type='LoadImageFromFile', color_type='unchanged') and "
            "dict(type='CheckImage') (mmseg's MMSegInferencer and "
            'inference_model need the LoadImageFromFile name).')
        kwargs.setdefault('color_type', 'unchanged')
        super().__init__(**kwargs)
        self.check = CheckImage(exif_orientation, bit_depth)

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            loaded = super().transform(results)
        except (FileNotFoundError, AssertionError, cv2.error) as err:
            if self.ignore_empty:
                return None
            if not isinstance(err, FileNotFoundError):
                raise unreadable_error(path) from err
            raise FileNotFoundError(
                f'Image file {path!r} not found: check data_root, data_prefix '
                'and the annotation file, or remove the entry.') from err
        return self.check(loaded) if loaded is not None else None
