from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class CamouflageDataset(BinarySegDataset):
    """Camouflaged object detection (COD10K, CAMO, CHAMELEON).

    Training: COD10K train (3040) + CAMO train (1000) = 4040 images, as in
    SINet-V2 and the Conv-LoRA / SAM-Adapter papers. Test sets: CAMO (250),
    COD10K (2026), CHAMELEON (76).

    Official layout (the SINet-V2 release, ``TrainDataset.zip`` /
    ``TestDataset.zip``, https://github.com/GewelsJI/SINet-V2)::

        TrainDataset/Imgs/*.jpg      TrainDataset/GT/*.png
        TestDataset/{CAMO,COD10K,CHAMELEON}/Imgs/*.jpg
        TestDataset/{CAMO,COD10K,CHAMELEON}/GT/*.png

    Layout the configs read (``tools/dataset_converters/camouflage.py``;
    ``val`` is a seeded random 10% of the training set)::

        data/camouflage/train/{images,masks}/
        data/camouflage/val/{images,masks}/
        data/camouflage/test/{CAMO,COD10K,CHAMELEON}/{images,masks}/

    Images .jpg (.png/.jpeg/.bmp accepted), masks ``<stem>.png`` (0/255).
    Labels: 0 background, 1 camouflaged object. Evaluate with
    ``SODMetric(beta2=0.3)``.
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
