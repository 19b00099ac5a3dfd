"""SAM's mask decoder as a multi-class mmseg decode head."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from .base_sam_mask_decoder_head import BaseSAMMaskDecoderHead


def semantic_inference(cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Scores (B, K, h, w) ``sum_q softmax(cls)[c] * sigmoid(mask)`` of
    logits (B, N, K + 1) and (B, N, h, w)."""
    probs = cls_logits.softmax(-1)[..., :-1]
    return torch.einsum('bqc,bqhw->bchw', probs, mask_logits.sigmoid())


@MODELS.register_module()
class SAMMaskClassificationHead(BaseSAMMaskDecoderHead):
    """Multi-class prompt-free SAM head (Mask2Former-style): each query
    gives a mask and K + 1 class logits (K: "no object").

    Args:
        num_classes (int): Number of classes K (> 1).
        out_channels (int, optional): K, or None for K.
        num_queries (int): Number of query tokens N. Default 10.
        keep_sam_multimask_tokens (bool): Keep SAM's three multi-mask tokens
            in the sequence. Default False.
        threshold (None): Must be None: the prediction is the argmax.
        loss_decode (dict | list[dict], optional): Loss config(s) returning
            dicts of losses. Default ``MaskClassificationLoss``.
        ignore_index (int): Label that is never a segment. Default 255.
        **kwargs: See :class:`BaseSAMMaskDecoderHead`.
    """

    # predict_by_feat returns class probabilities, not logits.
    returns_probabilities = True

    def __init__(self,
                 num_classes: int,
                 out_channels: Optional[int] = None,
                 num_queries: int = 10,
                 keep_sam_multimask_tokens: bool = False,
                 threshold: Optional[float] = None,
                 loss_decode: Optional[Union[dict, Sequence[dict]]] = None,
                 ignore_index: int = 255,
                 **kwargs):
        if kwargs.pop('prompt_sampler', None) is not None:
            raise ValueError(
                'SAMMaskClassificationHead has no prompt-aware training: a '
                'SAM prompt asks for one object, this head answers all K '
                'classes at once (see docs/prompts.md). Remove '
                'prompt_sampler, or train the binary SAMMaskDecoderHead.')
        if num_classes < 2 or out_channels not in (None, num_classes):
            raise ValueError(
                'SAMMaskClassificationHead needs num_classes=K >= 2 and '
                f'out_channels=K (or None), got num_classes={num_classes}, '
                f'out_channels={out_channels}. For one foreground class use '
                "type='SAMMaskDecoderHead' (num_classes=2, out_channels=1).")
        if threshold is not None:
            raise ValueError(
                'SAMMaskClassificationHead predicts the argmax over classes; '
                f'threshold={threshold!r} applies to the binary '
                'SAMMaskDecoderHead only. Remove it (or set None).')
        if loss_decode is None:
            loss_decode = dict(
                type='MaskClassificationLoss',
                num_classes=num_classes,
                ignore_index=ignore_index)
        super().__init__(
            num_classes=num_classes,
            out_channels=num_classes,
            num_queries=num_queries,
            keep_sam_multimask_tokens=keep_sam_multimask_tokens,
            threshold=None,
            loss_decode=loss_decode,
            ignore_index=ignore_index,
            **kwargs)
        for loss_module in self.loss_modules():
            loss_classes = getattr(loss_module, 'num_classes', num_classes)
            if loss_classes != num_classes:
                raise ValueError(
                    f'{type(loss_module).__name__} has num_classes='
                    f'{loss_classes} but the head has {num_classes}; set '
                    'the same K in decode_head.loss_decode (or leave '
                    'loss_decode out to get the default).')
        self.cls_embed = nn.Linear(self.embed_dim, num_classes + 1)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Class logits (B, N, K + 1) and mask logits (B, N, 4h, 4w)."""
        query_out, masks = self.decode_queries(inputs)
        return self.cls_embed(query_out), masks

    def loss_by_feat(self, seg_logits: Tuple[Tensor, Tensor],
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Losses by name of (class logits, mask logits)."""
        seg_label = self._stack_batch_gt(batch_data_samples).squeeze(1)
        cls_logits, mask_logits = seg_logits
        loss = dict()
        for loss_module in self.loss_modules():
            for name, value in loss_module(cls_logits, mask_logits,
                                           seg_label).items():
                loss[name] = loss[name] + value if name in loss else value
        return loss

    def predict_by_feat(self, seg_logits: Tuple[Tensor, Tensor],
                        batch_img_metas: List[dict]) -> Tensor:
        """Semantic scores (B, K, H, W) at the padded input size."""
        cls_logits, mask_logits = seg_logits
        scores = semantic_inference(cls_logits, mask_logits)
        return super().predict_by_feat(scores, batch_img_metas)
