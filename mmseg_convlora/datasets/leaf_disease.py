from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class LeafDiseaseDataset(BinarySegDataset):
    """Leaf disease segmentation (diseased regions on leaf photographs).

    588 images with masks of the diseased areas, without an official split.

    Official layout (Kaggle "Leaf disease segmentation dataset",
    https://www.kaggle.com/datasets/fakhrealam9537/leaf-disease-segmentation-dataset)::

        data/data/images/*.jpg     588 images
        data/data/masks/*.png      0/255 masks, same stems
        aug_data/aug_data/...      augmented copies (not used)

    Layout the configs read (``tools/dataset_converters/leaf_disease.py``:
    seeded random test / val / train split)::

        data/leaf_disease/{train,val,test}/images/*.jpg
        data/leaf_disease/{train,val,test}/masks/*.png

    Labels: 0 background (healthy leaf and scene), 1 disease. Evaluate with
    ``BinarySegMetric`` (``IoU``, ``Dice``, ``Acc``).
    """

    METAINFO = dict(
        classes=('background', 'disease'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.jpg', '.jpeg', '.png'),
                 seg_map_suffix='.png',
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
