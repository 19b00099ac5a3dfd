"""The test pipeline of a config applied to images given by path or array."""
import os
from typing import Sequence, Union

import numpy as np
from mmcv.transforms import LoadAnnotations, LoadImageFromFile
from mmengine.dataset import Compose
from mmseg.registry import TRANSFORMS


class InferencePipeline:
    """A test pipeline (list[dict]) without annotation loaders, on an image
    path or on an array (``LoadImageFromNDArray`` for its image loader)."""

    def __init__(self, pipeline: Sequence[dict]):
        pipeline = [
            dict(t) for t in pipeline
            if not _is_subclass(t.get('type'), LoadAnnotations)
        ]
        loader = next((i for i, t in enumerate(pipeline)
                       if _is_subclass(t.get('type'), LoadImageFromFile)),
                      None)
        if loader is None:
            raise ValueError(
                'The test pipeline has no image loader (LoadImageFromFile or '
                f'a subclass): {[t.get("type") for t in pipeline]}; inference '
                'needs one to read the images.')
        self.from_file = Compose(pipeline)
        self.from_array = Compose([dict(type='LoadImageFromNDArray')] +
                                  pipeline[loader + 1:])

    def __call__(self, image: Union[str, os.PathLike, np.ndarray]) -> dict:
        """``inputs`` and ``data_samples`` of a file or (H, W, 3) BGR array."""
        if isinstance(image, np.ndarray):
            return self.from_array(dict(img=image))
        return self.from_file(dict(img_path=os.fspath(image)))


def _is_subclass(type_name, base: type) -> bool:
    cls = TRANSFORMS.get(type_name) if isinstance(type_name, str) \
        else type_name
    return isinstance(cls, type) and issubclass(cls, base)
