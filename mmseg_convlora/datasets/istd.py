from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class ISTDShadowDataset(BinarySegDataset):
    """ISTD shadow detection (Wang et al., CVPR 2018).

    1330 training and 540 test triplets (shadow image, shadow mask,
    shadow-free image); only the image and the mask are used.

    Official layout (https://github.com/DeepInsight-PCALab/ST-CGAN)::

        ISTD_Dataset/train/train_A/*.png   shadow images
        ISTD_Dataset/train/train_B/*.png   0/255 shadow masks
        ISTD_Dataset/train/train_C/*.png   shadow-free images (ignored)
        ISTD_Dataset/test/test_{A,B,C}/*.png

    Layout the configs read (``tools/dataset_converters/istd.py``; ``val``
    is a seeded random 10% of the training set)::

        data/istd/{train,val,test}/images/*.png
        data/istd/{train,val,test}/masks/*.png

    Labels: 0 non-shadow, 1 shadow. Evaluate with :class:`BERMetric`.
    """

    METAINFO = dict(
        classes=('non-shadow', 'shadow'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.png', '.jpg'),
                 seg_map_suffix='.png',
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
