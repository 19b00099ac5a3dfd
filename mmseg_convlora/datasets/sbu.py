from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class SBUShadowDataset(BinarySegDataset):
    """SBU shadow detection (Vicente et al., ECCV 2016).

    The official release, unpacked under ``data_root``::

        SBUTrain4KRecoveredSmall/ShadowImages/*.jpg   4089 training images
        SBUTrain4KRecoveredSmall/ShadowMasks/*.png    0/255 masks
        SBU-Test/ShadowImages/*.jpg                   638 test images
        SBU-Test/ShadowMasks/*.png

    Labels: 0 non-shadow, 1 shadow. Evaluate with :class:`BERMetric`.
    """

    METAINFO = dict(
        classes=('non-shadow', 'shadow'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
