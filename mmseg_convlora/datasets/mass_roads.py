from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class MassRoadsDataset(BinarySegDataset):
    """Massachusetts Roads (Mnih, PhD thesis 2013): roads in aerial images.

    1108 training, 14 validation and 49 test 1500x1500 RGB tiles with 0/255
    road masks, as TIFF files (read by OpenCV like any other image).

    Official layouts (either is accepted by the converter): the author's
    release (https://www.cs.toronto.edu/~vmnih/data/)::

        {train,valid,test}/sat/*.tiff     images
        {train,valid,test}/map/*.tif      masks

    or the Kaggle mirror
    (https://www.kaggle.com/datasets/balraj98/massachusetts-roads-dataset)::

        tiff/{train,val,test}/*.tiff
        tiff/{train,val,test}_labels/*.tif

    Layout the configs read (``tools/dataset_converters/mass_roads.py``)::

        data/mass_roads/{train,val,test}/images/*.tiff
        data/mass_roads/{train,val,test}/masks/*.tif

    Labels: 0 background, 1 road. Evaluate with ``BinarySegMetric``
    (``IoU``, ``Dice``, ``Acc``).
    """

    METAINFO = dict(
        classes=('background', 'road'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.tiff', '.tif', '.png', '.jpg'),
                 seg_map_suffix='.tif',
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
