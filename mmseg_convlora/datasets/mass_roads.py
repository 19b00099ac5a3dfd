from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class MassRoadsDataset(BinarySegDataset):
    """Massachusetts Roads (Mnih 2013): 1500x1500 aerial TIFF tiles."""

    METAINFO = dict(
        classes=('background', 'road'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.tiff', '.tif', '.png', '.jpg'),
                 seg_map_suffix='.tif',
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
