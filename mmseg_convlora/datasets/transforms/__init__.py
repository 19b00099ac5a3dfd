from .binary_loading import LoadBinaryAnnotations, binarize_mask

__all__ = ['LoadBinaryAnnotations', 'binarize_mask']
