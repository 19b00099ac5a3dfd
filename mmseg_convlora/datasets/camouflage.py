from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class CamouflageDataset(BinarySegDataset):
    """Camouflaged objects: COD10K + CAMO train, CAMO/COD10K/CHAMELEON test."""

    METAINFO = dict(
        classes=('background', 'camouflaged'),
        palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix=('.jpg', '.jpeg', '.png', '.bmp'), **kwargs):
        super().__init__(img_suffix=img_suffix, **kwargs)
