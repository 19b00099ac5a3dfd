from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class SBUShadowDataset(BinarySegDataset):
    """SBU shadow detection (Vicente et al., ECCV 2016), read in its official
    layout (``SBUTrain4KRecoveredSmall`` and ``SBU-Test``, each with
    ``ShadowImages`` and ``ShadowMasks``); evaluated with ``BERMetric``."""

    METAINFO = dict(
        classes=('non-shadow', 'shadow'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
