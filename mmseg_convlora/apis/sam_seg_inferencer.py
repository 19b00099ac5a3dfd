"""mmseg's ``MMSegInferencer`` for this plugin's configs and checkpoints."""
from typing import Optional

import torch.nn as nn
from mmseg.apis import MMSegInferencer
from mmseg.utils import ConfigType

from .inference import get_test_pipeline, inference_config, init_segmentor
from .inference_pipeline import InferencePipeline


class SAMSegInferencer(MMSegInferencer):
    """:class:`mmseg.apis.MMSegInferencer` for SAM segmentor configs.

    Same arguments, call and outputs as ``MMSegInferencer`` (``inferencer(
    images, out_dir=..., return_datasamples=...)``); it differs only where
    mmseg's class assumes mmseg's own configs:

    * the test pipeline's image loader may be any ``LoadImageFromFile``
      subclass (``LoadImageChecked``), and its annotation loaders stay
      (they pass images without masks through);
    * configs with several named test sets (a list ``test_dataloader``) use
      the first set's pipeline;
    * checkpoints are loaded with
      :func:`~mmseg_convlora.models.utils.load_peft_checkpoint` (trainable
      weights only, refused if of another model), and classes and palette
      come from the checkpoint or else the config's dataset (not
      Cityscapes');
    * configs that train from cached embeddings predict with the encoder.

    Args:
        model (str | Config): Config file or object.
        weights (str, optional): Checkpoint written by training.
        device (str, optional): Default: CUDA if available, else CPU.
        Others: see ``MMSegInferencer``.
    """

    def _init_model(self,
                    cfg: ConfigType,
                    weights: Optional[str],
                    device: str = 'cpu') -> nn.Module:
        return init_segmentor(cfg, weights, device)

    def _init_pipeline(self, cfg: ConfigType) -> InferencePipeline:
        return InferencePipeline(get_test_pipeline(inference_config(cfg)))
