from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class ISTDShadowDataset(BinarySegDataset):
    """ISTD shadow detection (Wang et al., CVPR 2018)."""

    METAINFO = dict(
        classes=('non-shadow', 'shadow'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix=('.png', '.jpg'), **kwargs):
        super().__init__(img_suffix=img_suffix, **kwargs)
