"""The backbone's embedding source that reads cached embeddings."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .cache_format import EmbeddingCacheError, check_manifest, read_manifest


@MODELS.register_module()
class CachedEmbeddings(nn.Module):
    """A backbone's ``embedding_source`` reading the samples' embeddings.

    Args:
        dir (str, optional): The cache to check against the backbone.
    """

    #: Pipeline steps that feed this source (dropped for new images).
    pipeline_steps = ('LoadCachedEmbedding', )

    def __init__(self, dir: Optional[str] = None):
        super().__init__()
        self.dir = dir
        self.owner, self.shape = 'backbone', None

    def bind(self, backbone: nn.Module, checkpoint: Optional[str]) -> None:
        """Check the cache against ``backbone`` and its SAM ``checkpoint``
        (None: random weights, nothing to check)."""
        self.owner = type(backbone).__name__
        self.shape = backbone.embedding_shape
        if self.dir is not None and checkpoint is not None:
            check_manifest(
                read_manifest(self.dir), self.dir, checkpoint,
                backbone.arch_name, backbone.img_size, backbone.out_channels)

    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[Sequence]) -> torch.Tensor:
        """The data samples' ``sam_embedding``, (B, C, h, w) float32."""
        if not data_samples or any('sam_embedding' not in ds
                                   for ds in data_samples):
            raise EmbeddingCacheError(
                f'This {self.owner} reads cached embeddings (no encoder): add '
                "dict(type='LoadCachedEmbedding', cache_dir=...) after "
                'PackSegInputs in the train and test pipelines (as '
                'configs/cad/sbu_vit-b_cached.py).')
        # float32 first: stack refuses float16 under a bfloat16 autocast
        embedding = torch.stack([
            ds.sam_embedding.to(device=inputs.device, dtype=torch.float32)
            for ds in data_samples
        ])
        if tuple(embedding.shape) != (inputs.shape[0], ) + self.shape:
            raise EmbeddingCacheError(
                f'Cached embeddings have shape {tuple(embedding.shape)}, not '
                f'{(inputs.shape[0], ) + self.shape}: rebuild the cache with '
                'tools/cache_embeddings.py for this config.')
        return embedding
