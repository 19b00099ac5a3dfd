from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class CamouflageDataset(BinarySegDataset):
    """Camouflaged object detection: COD10K + CAMO training, CAMO, COD10K and
    CHAMELEON test sets (the SINet-V2 release).

    Written as ``{train,val,test}/{images,masks}`` by
    ``tools/dataset_converters/camouflage.py``; evaluated with ``SODMetric``.
    """

    METAINFO = dict(
        classes=('background', 'camouflaged'),
        palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.jpg', '.jpeg', '.png', '.bmp'),
                 seg_map_suffix='.png',
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
