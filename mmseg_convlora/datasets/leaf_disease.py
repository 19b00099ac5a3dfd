from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class LeafDiseaseDataset(BinarySegDataset):
    """Leaf disease segmentation (Kaggle): diseased regions on leaves."""

    METAINFO = dict(
        classes=('background', 'disease'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix=('.jpg', '.jpeg', '.png'), **kwargs):
        super().__init__(img_suffix=img_suffix, **kwargs)
