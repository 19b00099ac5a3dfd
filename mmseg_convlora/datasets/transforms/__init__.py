from .binary_loading import LoadBinaryAnnotations, binarize_mask
from .trans10k_loading import LoadTrans10KAnnotations

__all__ = ['LoadBinaryAnnotations', 'LoadTrans10KAnnotations', 'binarize_mask']
from .cached_embedding import LoadCachedEmbedding  # noqa: E402,F401
__all__.append('LoadCachedEmbedding')
