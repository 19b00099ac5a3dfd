"""The segmentor that ties SAM's encoder and a prompt-free SAM head
together."""
import inspect
import logging
from typing import Dict, List, Optional

import torch
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from ..utils.peft_checkpoint import (WRAPPER_PARTS, check_state_dict,
                                     fill_frozen_weights)


def multi_class_head_cfg(cfg: Optional[dict]) -> Optional[dict]:
    """The head config, with ``SAMMaskClassificationHead`` for configs that
    name the multi-class head ``SAMMaskDecoderHead`` (``out_channels=K``).

    Before the binary and the multi-class heads were split, one
    ``SAMMaskDecoderHead`` did both; configs and exported models of that
    time keep working (same arguments, same checkpoint keys).
    """
    if cfg is None:
        return cfg
    name = str(cfg.get('type', '')).split('.')[-1]
    if name == 'SAMMaskDecoderHead' and cfg.get('out_channels', 1) != 1:
        print_log(
            'decode_head: SAMMaskDecoderHead with out_channels='
            f'{cfg["out_channels"]} builds SAMMaskClassificationHead, the '
            "multi-class head; write type='SAMMaskClassificationHead' in "
            'the config.',
            logger='current',
            level=logging.WARNING)
        cfg = dict(cfg, type='SAMMaskClassificationHead')
    return cfg


@MODELS.register_module()
class SAMSegmentor(EncoderDecoder):
    """An :class:`EncoderDecoder` for SAM with parameter-efficient adapters.

    Differences from mmseg's ``EncoderDecoder``:

    * The data samples reach the backbone: ``loss``, ``predict`` and
      ``_forward`` call :meth:`extract_feat` with them, and it passes them on
      to a backbone whose ``forward`` takes ``data_samples`` (``SAMViT``
      reads cached embeddings and CAD's input image from them). mmseg's
      ``encode_decode`` path (images only) still works for backbones that do
      not need them.
    * ``loss`` adds the auxiliary losses the backbone's adapters produced in
      the same forward pass (Conv-LoRA's load-balancing ``loss_moe``).
    * ``predict`` runs whole-image inference only: SAM takes one fixed
      square input, so ``test_cfg=dict(mode='slide')`` is refused.
    * ``postprocess_result`` turns the head's output into probabilities
      *before* undoing padding/flip and resizing to the original image size
      (bilinear), so ``seg_logits`` holds probabilities at the ground truth's
      resolution for the metrics, and ``pred_sem_seg`` thresholds (binary)
      or takes the argmax (multi-class) of those.
    * A ``decode_head`` config naming the multi-class head
      ``SAMMaskDecoderHead`` builds ``SAMMaskClassificationHead``
      (:func:`multi_class_head_cfg`).
    * Loading a state dict (``load_state_dict``, mmseg's ``init_model``,
      ``MMSegInferencer``, ``load_from``) refuses one that does not fit the
      trainable weights (missing, extra or reshaped ones, or none at all:
      e.g. a checkpoint of another adapter or number of classes, or the SAM
      weights file) and completes a trainable-only one with the frozen SAM
      weights loaded at construction.

    Args:
        sam_checkpoint (str, optional): Official SAM checkpoint file, passed
            to the backbone and the head unless they name their own. This is
            the one line a config changes to point at the weights.
        **kwargs: See :class:`mmseg.models.EncoderDecoder`.
    """

    def __init__(self, sam_checkpoint: Optional[str] = None, **kwargs):
        self.sam_checkpoint = sam_checkpoint
        for part in ('backbone', 'decode_head'):
            cfg = kwargs.get(part)
            if sam_checkpoint is not None and cfg is not None and \
                    cfg.get('checkpoint') is None:
                kwargs[part] = dict(cfg, checkpoint=sam_checkpoint)
        kwargs['decode_head'] = multi_class_head_cfg(kwargs.get('decode_head'))
        super().__init__(**kwargs)
        mode = (self.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ValueError(
                f"SAMSegmentor runs whole-image inference (test_cfg mode "
                f"'whole'); got mode={mode!r}. SAM takes one fixed square "
                "input: set model.test_cfg=dict(mode='whole').")
        self.backbone_reads_samples = 'data_samples' in inspect.signature(
            self.backbone.forward).parameters
        # The SAM file each part's frozen weights were read from (None:
        # they are random), for completing trainable-only checkpoints.
        self.frozen_weights_from = {
            part: (kwargs.get(part) or {}).get('checkpoint')
            for part in ('backbone', 'decode_head')
        }

    def extract_feat(self,
                     inputs: Tensor,
                     data_samples: OptSampleList = None) -> List[Tensor]:
        """Backbone (and neck) features of ``inputs``.

        Args:
            inputs (Tensor): Normalised images, (B, 3, H, W).
            data_samples (list[SegDataSample], optional): Passed to a
                backbone whose ``forward`` takes ``data_samples``.

        Returns:
            list[Tensor]: The features.
        """
        if self.backbone_reads_samples:
            x = self.backbone(inputs, data_samples)
        else:
            x = self.backbone(inputs)
        if self.with_neck:
            x = self.neck(x)
        return x

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Head losses (``decode.*``, ``aux.*``) plus the backbone's
        auxiliary losses (e.g. ``loss_moe``)."""
        x = self.extract_feat(inputs, data_samples)
        losses = self._decode_head_forward_train(x, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        for name, value in self.backbone.aux_losses().items():
            losses[name] = losses[name] + value if name in losses else value
        return losses

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Whole-image prediction, post-processed by
        :meth:`postprocess_result`."""
        if data_samples is not None:
            batch_img_metas = [sample.metainfo for sample in data_samples]
        else:
            batch_img_metas = [
                dict(
                    ori_shape=inputs.shape[2:],
                    img_shape=inputs.shape[2:],
                    pad_shape=inputs.shape[2:],
                    padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        x = self.extract_feat(inputs, data_samples)
        seg_logits = self.decode_head.predict(x, batch_img_metas,
                                              self.test_cfg)
        return self.postprocess_result(seg_logits, data_samples)

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """The head's raw output (no post-processing)."""
        return self.decode_head.forward(
            self.extract_feat(inputs, data_samples))

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """Convert the head's (B, C, H, W) output into ``SegDataSample``s.

        Binary (C = 1): logits -> sigmoid probabilities. Multi-class: the
        head already returns per-class scores in [0, 1].
        """
        batch_size, C, H, W = seg_logits.shape
        probs = seg_logits.float().sigmoid() if C == 1 else seg_logits.float()
        only_prediction = data_samples is None
        if only_prediction:
            data_samples = [SegDataSample() for _ in range(batch_size)]
        for i in range(batch_size):
            i_probs = probs[i:i + 1]
            if not only_prediction:
                meta = data_samples[i].metainfo
                pad = meta.get('img_padding_size',
                               meta.get('padding_size', [0] * 4))
                left, right, top, bottom = pad
                i_probs = i_probs[:, :, top:H - bottom, left:W - right]
                if meta.get('flip', False):
                    dim = 3 if meta.get('flip_direction',
                                        'horizontal') == 'horizontal' else 2
                    i_probs = i_probs.flip(dims=(dim, ))
                i_probs = resize(
                    i_probs,
                    size=meta['ori_shape'],
                    mode='bilinear',
                    align_corners=self.align_corners,
                    warning=False)
            i_probs = i_probs.squeeze(0)
            if C == 1:
                pred = (i_probs > self.decode_head.threshold).long()
            else:
                pred = i_probs.argmax(dim=0, keepdim=True)
            data_samples[i].set_data({
                'seg_logits': PixelData(data=i_probs),
                'pred_sem_seg': PixelData(data=pred)
            })
        return data_samples

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Under FSDP the names and shapes of the wrapped modules differ from
        # the checkpoint's; TrainableCheckpointHook checked the checkpoint
        # against the unwrapped names before FSDP loads it.
        if not self._inside_fsdp(prefix):
            own = {
                k[len(prefix):]: v
                for k, v in state_dict.items() if k.startswith(prefix)
            }
            check_state_dict(self, own)
            fill_frozen_weights(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _inside_fsdp(self, prefix: str) -> bool:
        if any(p in prefix for p in WRAPPER_PARTS):
            return True
        if not torch.distributed.is_available():
            return False
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        return any(isinstance(m, FSDP) for m in self.modules())

    def parameter_counts(self) -> Dict[str, int]:
        """Trainable and total parameter counts (shared tensors once)."""
        trainable = total = 0
        for p in self.parameters():
            total += p.numel()
            if p.requires_grad:
                trainable += p.numel()
        return dict(trainable=trainable, total=total)
