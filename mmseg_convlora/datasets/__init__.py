from .binary_seg_dataset import BinarySegDataset
from .sbu import SBUShadowDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['BinarySegDataset', 'SBUShadowDataset']
