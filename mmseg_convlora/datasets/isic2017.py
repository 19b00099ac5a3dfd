from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class ISIC2017Dataset(BinarySegDataset):
    """ISIC 2017 skin lesion segmentation (part 1), official splits.

    Written as ``{train,val,test}/{images,masks}`` by
    ``tools/dataset_converters/isic2017.py``; evaluated with
    ``BinarySegMetric``.
    """

    METAINFO = dict(
        classes=('background', 'lesion'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
