from .binary_seg_dataset import BinarySegDataset
from .camouflage import CamouflageDataset
from .folder_seg_dataset import FolderSegDataset
from .isic2017 import ISIC2017Dataset
from .istd import ISTDShadowDataset
from .leaf_disease import LeafDiseaseDataset
from .mass_roads import MassRoadsDataset
from .polyp import PolypDataset
from .sbu import SBUShadowDataset
from .trans10k import Trans10KDataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BinarySegDataset', 'FolderSegDataset', 'SBUShadowDataset',
    'Trans10KDataset', 'PolypDataset', 'CamouflageDataset', 'ISIC2017Dataset',
    'ISTDShadowDataset', 'LeafDiseaseDataset', 'MassRoadsDataset'
]
