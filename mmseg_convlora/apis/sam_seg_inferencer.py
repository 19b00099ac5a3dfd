"""mmseg's ``MMSegInferencer`` for this plugin's configs and checkpoints."""
from typing import Optional

import torch.nn as nn
from mmseg.apis import MMSegInferencer
from mmseg.utils import ConfigType

from .inference import get_test_pipeline, inference_config, init_segmentor
from .inference_pipeline import InferencePipeline


class SAMSegInferencer(MMSegInferencer):
    """``MMSegInferencer`` (same args) on :func:`init_segmentor`'s model."""

    def _init_model(self,
                    cfg: ConfigType,
                    weights: Optional[str],
                    device: str = 'cpu') -> nn.Module:
        return init_segmentor(cfg, weights, device)

    def _init_pipeline(self, cfg: ConfigType) -> InferencePipeline:
        return InferencePipeline(get_test_pipeline(inference_config(cfg)))
