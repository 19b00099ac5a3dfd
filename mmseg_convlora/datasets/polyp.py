from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class PolypDataset(BinarySegDataset):
    """Polyps in colonoscopy images (PraNet split, five test sets)."""

    METAINFO = dict(
        classes=('background', 'polyp'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.png', '.jpg', '.jpeg', '.bmp', '.tif'),
                 **kwargs):
        super().__init__(img_suffix=img_suffix, **kwargs)
