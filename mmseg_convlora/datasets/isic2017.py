from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class ISIC2017Dataset(BinarySegDataset):
    """ISIC 2017 skin lesion segmentation (challenge part 1).

    2000 training, 150 validation and 600 test dermoscopy images with the
    official splits.

    Official layout (https://challenge.isic-archive.com/data/#2017)::

        ISIC-2017_Training_Data/ISIC_0000000.jpg   (+ *_superpixels.png,
                                                    metadata .csv: ignored)
        ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png
        ISIC-2017_Validation_Data/...
        ISIC-2017_Validation_Part1_GroundTruth/...
        ISIC-2017_Test_v2_Data/...
        ISIC-2017_Test_v2_Part1_GroundTruth/...

    Layout the configs read (``tools/dataset_converters/isic2017.py``
    copies the images and drops the ``_segmentation`` mask suffix)::

        data/isic2017/{train,val,test}/images/ISIC_xxxxxxx.jpg
        data/isic2017/{train,val,test}/masks/ISIC_xxxxxxx.png

    Labels: 0 background, 1 lesion. Evaluate with ``BinarySegMetric``
    (``Jaccard``, ``threshold_Jaccard``, ``Dice``, ``Acc``).
    """

    METAINFO = dict(
        classes=('background', 'lesion'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
