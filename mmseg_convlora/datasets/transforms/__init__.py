from .binary_loading import LoadBinaryAnnotations, binarize_mask
from .trans10k_loading import LoadTrans10KAnnotations

__all__ = ['LoadBinaryAnnotations', 'LoadTrans10KAnnotations', 'binarize_mask']
