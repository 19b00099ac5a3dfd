"""The pipeline step that reads each sample's cached embedding."""
import os.path as osp
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .cache_format import (EmbeddingCacheError, find_entry, flip_tag,
                           read_manifest, rebuild_command)


@TRANSFORMS.register_module()
class LoadCachedEmbedding(BaseTransform):
    """Attach the cached (C, h, w) embedding of the image (and its flip) as
    ``sam_embedding``; place it after ``PackSegInputs``.

    Args:
        cache_dir (str): The cache directory (``--out`` of the tool).
    """

    def __init__(self, cache_dir: str):
        self.cache_dir = cache_dir
        self._manifest: Optional[dict] = None

    @property
    def manifest(self) -> dict:
        """The cache's manifest, read once per dataloader worker."""
        if self._manifest is None:
            self._manifest = read_manifest(self.cache_dir)
        return self._manifest

    def transform(self, results: dict) -> dict:
        sample = results.get('data_samples')
        if sample is None:
            raise EmbeddingCacheError(
                'LoadCachedEmbedding must come after PackSegInputs in the '
                'pipeline (it reads the flip from the packed data sample).')
        meta = sample.metainfo
        img_path = meta.get('img_path')
        tag = flip_tag(
            meta.get('flip', False), meta.get('flip_direction', 'horizontal'))
        entry = find_entry(self.manifest['entries'], img_path or '')
        if entry is None or tag not in entry:
            raise EmbeddingCacheError(
                f'No cached embedding ({tag}) for {img_path!r} in '
                f'{self.cache_dir!r}; the cache covers '
                f'{len(self.manifest["entries"])} images. Rebuild it for '
                'this dataset with: ' +
                rebuild_command(self.cache_dir, self.manifest.get('config')))
        array = np.load(osp.join(self.cache_dir, entry[tag]))
        sample.set_field(torch.from_numpy(array), 'sam_embedding')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(cache_dir={self.cache_dir!r})'
