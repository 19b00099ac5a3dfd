from mmseg.registry import DATASETS

from .binary_seg_dataset import BinarySegDataset


@DATASETS.register_module()
class PolypDataset(BinarySegDataset):
    """Polyp segmentation in colonoscopy images (the PraNet benchmark).

    Training: 900 Kvasir-SEG + 550 CVC-ClinicDB images, the 9:1 split of
    PraNet (Fan et al., MICCAI 2020). Test sets: Kvasir (100), CVC-ClinicDB
    (62), CVC-ColonDB (380), ETIS-LaribPolypDB (196) and CVC-300 (60, the
    EndoScene test set, "CVC-T").

    Official layout (PraNet's ``TrainDataset.zip`` and ``TestDataset.zip``,
    https://github.com/DengPingFan/PraNet)::

        TrainDataset/image/*.png     (some mirrors: images/)
        TrainDataset/mask/*.png      (some mirrors: masks/)
        TestDataset/{Kvasir,CVC-ClinicDB,CVC-ColonDB,ETIS-LaribPolypDB,
                     CVC-300}/{images,masks}/*.png

    Layout the configs read (``tools/dataset_converters/polyp.py`` writes
    it; ``val`` is a seeded random 10% of PraNet's training set)::

        data/polyp/train/{images,masks}/
        data/polyp/val/{images,masks}/
        data/polyp/test/<test set>/{images,masks}/

    Images may be .png/.jpg/.jpeg/.bmp/.tif; masks are ``<stem>.png``
    (0/255). Labels: 0 background, 1 polyp. Evaluate with
    ``SODMetric(beta2=0.3)`` (the paper's S, E, weighted F, MAE).
    """

    METAINFO = dict(
        classes=('background', 'polyp'), palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self,
                 img_suffix=('.png', '.jpg', '.jpeg', '.bmp', '.tif'),
                 seg_map_suffix='.png',
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
