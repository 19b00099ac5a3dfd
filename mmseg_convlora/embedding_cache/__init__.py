"""Training from cached frozen-encoder embeddings (optional)."""
from .cache_format import EmbeddingCacheError
from .cached_embeddings import CachedEmbeddings
from .load_cached_embedding import LoadCachedEmbedding

__all__ = ['CachedEmbeddings', 'EmbeddingCacheError', 'LoadCachedEmbedding']
