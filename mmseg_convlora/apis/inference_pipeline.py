"""The test pipeline of a config applied to images given by path or array."""
import os
from typing import Sequence, Union

import numpy as np
from mmcv.transforms import LoadAnnotations, LoadImageFromFile
from mmengine.dataset import Compose
from mmseg.registry import TRANSFORMS


class InferencePipeline:
    """Run a config's test pipeline on a file path or a loaded image.

    A path goes through the pipeline with the config's own image loader
    (e.g. ``LoadImageChecked``: decoded as in evaluation); an array replaces
    that loader with mmcv's ``LoadImageFromNDArray``. Annotation loaders
    (subclasses of mmcv's ``LoadAnnotations``, as mmseg's inference APIs
    remove them) are dropped; this plugin's others pass images without a
    mask through.

    Args:
        pipeline (list[dict]): A test pipeline config, e.g.
            ``cfg.test_dataloader.dataset.pipeline``.

    Raises:
        ValueError: The pipeline has no image loader (a subclass of mmcv's
            ``LoadImageFromFile``).
    """

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
                'The test pipeline has no image loader (LoadImageChecked or '
                'another LoadImageFromFile): '
                f'{[t.get("type") for t in pipeline]}. Inference runs the '
                'config\'s test pipeline on the images.')
        self.from_file = Compose(pipeline)
        self.from_array = Compose([dict(type='LoadImageFromNDArray')] +
                                  pipeline[loader + 1:])

    def __call__(self, image: Union[str, os.PathLike, np.ndarray]) -> dict:
        """Args:
            image (str | PathLike | np.ndarray): An image file, or an image
                as loaded by mmcv: (H, W, 3) uint8, BGR.

        Returns:
            dict: ``inputs`` and ``data_samples``, as the test dataloader's
            samples.
        """
        if isinstance(image, np.ndarray):
            return self.from_array(dict(img=image))
        return self.from_file(dict(img_path=os.fspath(image)))


def _is_subclass(type_name, base: type) -> bool:
    cls = TRANSFORMS.get(type_name) if isinstance(type_name, str) \
        else type_name
    return isinstance(cls, type) and issubclass(cls, base)
