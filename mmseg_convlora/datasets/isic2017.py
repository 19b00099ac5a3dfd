from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class ISIC2017Dataset(BinarySegDataset):
    """ISIC 2017 skin lesion segmentation (part 1), official splits."""

    METAINFO = dict(
        classes=('background', 'lesion'), palette=[[0, 0, 0], [220, 20, 60]])
