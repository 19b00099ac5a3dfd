"""The segmentor that ties SAM's encoder (or an mmseg backbone with
adapters) and a SAM or mmseg decode head together."""
import inspect
import logging
from typing import Dict, List, Optional

from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from ..backbones.base_sam_backbone import BaseSAMBackbone
from ..utils.peft_checkpoint import prepare_state_dict


def takes_checkpoint(cfg: Optional[dict]) -> bool:
    """Whether the class ``cfg`` builds takes a ``checkpoint`` argument
    (SAM's backbones and heads do; mmseg's heads and PEFTBackbone do not)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        return False
    cls = cfg['type'] if inspect.isclass(cfg['type']) else MODELS.get(
        cfg['type'])
    for klass in getattr(cls, '__mro__', ()):
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        params = inspect.signature(init).parameters
        if 'checkpoint' in params:
            return True
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return False  # the arguments stop here
    return False


def multi_class_head_cfg(cfg: Optional[dict]) -> Optional[dict]:
    """The head config, mapping a multi-class ``SAMMaskDecoderHead``
    (``out_channels=K``, older configs) to ``SAMMaskClassificationHead``."""
    name = str(cfg.get('type', '')).split('.')[-1] if cfg else ''
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
    """An :class:`EncoderDecoder` for SAM with parameter-efficient adapters:
    adds the backbone's auxiliary losses (``loss_moe``), returns
    probabilities in ``seg_logits`` and checks every state dict loaded into
    it (:func:`~mmseg_convlora.models.utils.prepare_state_dict`).

    Args:
        sam_checkpoint (str, optional): Official SAM checkpoint file, passed
            to the backbone and heads that take a ``checkpoint``.
        check_frozen_weights (bool): Refuse a checkpoint trained on other
            frozen weights (False: warn). Defaults to True.
        **kwargs: See :class:`mmseg.models.EncoderDecoder`.
    """

    def __init__(self,
                 sam_checkpoint: Optional[str] = None,
                 check_frozen_weights: bool = True,
                 **kwargs):
        self.sam_checkpoint = sam_checkpoint
        self.check_frozen_weights = check_frozen_weights
        kwargs['decode_head'] = multi_class_head_cfg(kwargs.get('decode_head'))
        for part in ('backbone', 'decode_head', 'auxiliary_head'):
            cfg = kwargs.get(part)
            if isinstance(cfg, (list, tuple)):
                kwargs[part] = [self._with_checkpoint(c) for c in cfg]
            elif cfg is not None:
                kwargs[part] = self._with_checkpoint(cfg)
        super().__init__(**kwargs)
        self.backbone_reads_samples = 'data_samples' in inspect.signature(
            self.backbone.forward).parameters
        mode = (self.test_cfg or {}).get('mode', 'whole')
        fixed_input = isinstance(self.backbone, BaseSAMBackbone) or \
            self.backbone_reads_samples
        if mode not in ('whole', 'slide') or (mode == 'slide' and fixed_input):
            raise ValueError(
                f'SAMSegmentor runs whole-image inference (test_cfg mode '
                f"'whole') on SAM backbones; got mode={mode!r}. SAM takes "
                'one fixed square input: set model.test_cfg=dict('
                "mode='whole').")
        # the SAM file each SAM part's frozen weights came from (None:
        # random), to complete trainable-only checkpoints; other parts hold
        # theirs from construction
        self.frozen_weights_from = {
            part: kwargs[part].get('checkpoint')
            for part in ('backbone', 'decode_head')
            if takes_checkpoint(kwargs.get(part))
        }

    def _with_checkpoint(self, cfg: dict) -> dict:
        """``cfg`` with ``checkpoint=sam_checkpoint`` if its class takes
        one and it names none."""
        if self.sam_checkpoint is not None and takes_checkpoint(cfg) and \
                cfg.get('checkpoint') is None:
            return dict(cfg, checkpoint=self.sam_checkpoint)
        return cfg

    def extract_feat(self,
                     inputs: Tensor,
                     data_samples: OptSampleList = None) -> List[Tensor]:
        """Backbone (and neck) features of normalised images (B, 3, H, W);
        ``data_samples`` go to backbones that take them."""
        samples = (data_samples, ) if self.backbone_reads_samples else ()
        x = self.backbone(inputs, *samples)
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
        aux_losses = getattr(self.backbone, 'aux_losses', None)
        for name, value in (aux_losses() if aux_losses else {}).items():
            losses[name] = losses[name] + value if name in losses else value
        return losses

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Whole-image (or, off SAM backbones, sliding-window) prediction,
        post-processed by :meth:`postprocess_result`."""
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
        if self.test_cfg.get('mode', 'whole') == 'slide':
            seg_logits = self.slide_inference(inputs, batch_img_metas)
        else:
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
        """``SegDataSample``s of the head's (B, C, H, W) output: a sigmoid
        (C = 1) or a softmax, unless the head ``returns_probabilities``."""
        batch_size, C, H, W = seg_logits.shape
        probs = seg_logits.float()
        if C == 1:
            probs = probs.sigmoid()
        elif not getattr(self.decode_head, 'returns_probabilities', False):
            probs = probs.softmax(dim=1)
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

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args,
                              **kwargs):
        # the checkpoint contract of the whole model, checked once where a
        # load starts (a wrapper's load, e.g. FSDP's, passes a prefix)
        if not prefix:
            prepare_state_dict(self, state_dict, local_metadata)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      *args, **kwargs)

    def parameter_counts(self) -> Dict[str, int]:
        """Trainable and total parameter counts (shared tensors once)."""
        params = list(self.parameters())
        return dict(
            trainable=sum(p.numel() for p in params if p.requires_grad),
            total=sum(p.numel() for p in params))
