"""SAM's mask decoder as a binary mmseg decode head."""
from typing import Dict, Optional, Sequence, Union

import torch
from mmseg.models.utils import resize
from mmseg.registry import MODELS, TASK_UTILS
from mmseg.utils import SampleList
from torch import Tensor

from .base_sam_mask_decoder_head import BaseSAMMaskDecoderHead


@MODELS.register_module()
class SAMMaskDecoderHead(BaseSAMMaskDecoderHead):
    """Binary SAM head: one learned mask token, one mask; prompt-free, or
    with ``prompt_sampler`` prompts sampled from the training ground truth.

    Args:
        num_classes (int): Must be 2.
        out_channels (int): Must be 1.
        keep_sam_multimask_tokens (bool): Keep SAM's three multi-mask
            tokens, frozen, in the sequence. Default False.
        threshold (float): Foreground probability threshold. Default 0.5.
        loss_decode (dict | list[dict]): Binary loss config(s) on logits
            (B, 1, H, W). Default ``StructureLoss``.
        prompt_sampler (dict, optional): A :class:`GTPromptSampler` config.
            Default None: no prompts.
        **kwargs: See :class:`BaseSAMMaskDecoderHead`.
    """

    def __init__(
            self,
            num_classes: int = 2,
            out_channels: Optional[int] = 1,
            keep_sam_multimask_tokens: bool = False,
            threshold: Optional[float] = 0.5,
            loss_decode: Union[dict,
                               Sequence[dict]] = dict(type='StructureLoss'),
            prompt_sampler: Optional[dict] = None,
            **kwargs):
        if out_channels != 1 or num_classes != 2:
            raise ValueError(
                'SAMMaskDecoderHead is the binary head (num_classes=2, '
                f'out_channels=1), got num_classes={num_classes}, '
                f'out_channels={out_channels}. For K classes use '
                "type='SAMMaskClassificationHead' with num_classes=K.")
        super().__init__(
            num_classes=num_classes,
            out_channels=out_channels,
            num_queries=1,
            keep_sam_multimask_tokens=keep_sam_multimask_tokens,
            threshold=threshold,
            loss_decode=loss_decode,
            **kwargs)
        self.prompt_sampler = None if prompt_sampler is None else \
            TASK_UTILS.build(prompt_sampler)

    def forward(self,
                inputs: Sequence[Tensor],
                prompts: Optional[Sequence[Optional[dict]]] = None) -> Tensor:
        """Mask logits (B, 1, 4h, 4w); see :meth:`decode_queries`."""
        return self.decode_queries(inputs, prompts)[1]

    def loss(self, inputs: Sequence[Tensor], batch_data_samples: SampleList,
             train_cfg: dict) -> Dict[str, Tensor]:
        """Training losses, with prompts if ``prompt_sampler`` is set."""
        if self.prompt_sampler is None:
            return super().loss(inputs, batch_data_samples, train_cfg)
        gt = self._stack_batch_gt(batch_data_samples).squeeze(1)
        if tuple(gt.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f'Prompt-aware training samples prompts on the ground truth '
                f'in the decoder\'s input frame ({self.img_size}x'
                f'{self.img_size}), but it is {tuple(gt.shape[-2:])}: give '
                'the data preprocessor size=(img_size, img_size) or remove '
                'decode_head.prompt_sampler.')
        prompts = self.prompt_sampler(gt == 1, gt != self.ignore_index)
        return self.loss_by_feat(
            self.forward(inputs, prompts), batch_data_samples)

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """The losses by ``loss_name`` and ``acc_seg`` of logits (B, 1, 4h,
        4w), upsampled to the GT."""
        seg_label = self._stack_batch_gt(batch_data_samples).squeeze(1)
        seg_logits = resize(
            seg_logits,
            size=seg_label.shape[-2:],
            mode='bilinear',
            align_corners=self.align_corners)
        loss = dict()
        for loss_module in self.loss_modules():
            value = loss_module(
                seg_logits, seg_label, ignore_index=self.ignore_index)
            name = loss_module.loss_name
            loss[name] = loss[name] + value if name in loss else value
        with torch.no_grad():
            valid = seg_label != self.ignore_index
            pred = (seg_logits.squeeze(1).sigmoid() > self.threshold).long()
            correct = ((pred == seg_label) & valid).sum()
            loss['acc_seg'] = correct.float() * 100.0 / valid.sum().clamp(
                min=1)
        return loss
