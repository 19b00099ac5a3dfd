from .binary_seg_dataset import BinarySegDataset
from .sbu import SBUShadowDataset
from .trans10k import Trans10KDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['BinarySegDataset', 'SBUShadowDataset', 'Trans10KDataset']
