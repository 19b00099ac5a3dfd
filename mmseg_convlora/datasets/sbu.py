from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class SBUShadowDataset(BinarySegDataset):
    """SBU shadow detection (Vicente et al., ECCV 2016), official layout."""

    METAINFO = dict(
        classes=('non-shadow', 'shadow'), palette=[[0, 0, 0], [220, 20, 60]])
