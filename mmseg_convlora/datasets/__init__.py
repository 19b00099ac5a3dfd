from .binary_seg_dataset import (BinarySegDataset, CamouflageDataset,
                                 ISIC2017Dataset, ISTDShadowDataset,
                                 LeafDiseaseDataset, MassRoadsDataset,
                                 PolypDataset, SBUShadowDataset)
from .folder_seg_dataset import FolderSegDataset
from .trans10k import Trans10KDataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BinarySegDataset', 'FolderSegDataset', 'SBUShadowDataset',
    'Trans10KDataset', 'PolypDataset', 'CamouflageDataset', 'ISIC2017Dataset',
    'ISTDShadowDataset', 'LeafDiseaseDataset', 'MassRoadsDataset'
]
