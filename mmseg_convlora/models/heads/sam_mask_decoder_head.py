"""SAM's mask decoder as a prompt-free binary mmseg decode head."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from .base_sam_mask_decoder_head import BaseSAMMaskDecoderHead


@MODELS.register_module()
class SAMMaskDecoderHead(BaseSAMMaskDecoderHead):
    """Binary prompt-free SAM head: one learned mask token, one mask.

    The token sequence holds the IoU token and one trainable mask token
    (initialised from SAM's single-mask token 0, decoded by hypernetwork MLP
    #0), see :class:`BaseSAMMaskDecoderHead`. This is the Conv-LoRA
    reference's binary head (its decoder keeps only SAM's first mask token),
    which every config uses.

    With ``keep_sam_multimask_tokens=True`` SAM's three multi-mask tokens
    follow in the sequence, frozen and with their outputs discarded: the
    head then computes exactly ``segment_anything``'s
    ``Sam(multimask_output=False)`` mask at initialisation (the two differ
    because the tokens attend to each other in the two-way transformer).
    That mode is for equivalence checks and for
    ``tools/export_model.py --format sam``. Either way 3,505,536 parameters
    train for SAM's decoder.

    For K > 2 classes use :class:`SAMMaskClassificationHead`.

    Args:
        num_classes (int): Must be 2 (background, foreground).
        out_channels (int): Must be 1 (one foreground logit).
        keep_sam_multimask_tokens (bool): See above. Default False (the
            reference).
        threshold (float): Foreground threshold on the probability.
            Default 0.5.
        loss_decode (dict | list[dict]): Binary loss config(s), each called
            as ``loss(logits (B, 1, H, W), labels (B, H, W),
            ignore_index=...)``. Default ``StructureLoss``.
        **kwargs: See :class:`BaseSAMMaskDecoderHead` (``img_size``,
            ``checkpoint``, ``embed_dim``, ``decoder``, ...).

    Shapes:
        input: backbone outputs with the image embedding (B, embed_dim,
        h, w) at ``in_index`` (default last), h = w = img_size / 16.
        Output: mask logits (B, 1, 4h, 4w).
    """

    def __init__(
            self,
            num_classes: int = 2,
            out_channels: Optional[int] = 1,
            keep_sam_multimask_tokens: bool = False,
            threshold: Optional[float] = 0.5,
            loss_decode: Union[dict,
                               Sequence[dict]] = dict(type='StructureLoss'),
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

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Mask logits (B, 1, 4h, 4w) of the image embedding
        ``inputs[in_index]``.
        """
        return self.decode_queries(inputs)[1]

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Binary losses at the (padded) input size.

        The mask logits are upsampled bilinearly to the ground truth's size
        (the padded network input) and each ``loss_decode`` module gets
        ``(logits (B, 1, H, W), labels (B, H, W), ignore_index)``; losses of
        the same ``loss_name`` are summed. ``acc_seg`` is the pixel accuracy
        of ``sigmoid(logit) > threshold`` over non-ignored pixels (no
        gradient).

        Returns:
            dict[str, Tensor]: The losses by name, and ``acc_seg``.
        """
        seg_label = self._stack_batch_gt(batch_data_samples).squeeze(1)
        seg_logits = resize(
            seg_logits,
            size=seg_label.shape[-2:],
            mode='bilinear',
            align_corners=self.align_corners)
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        loss = dict()
        for loss_module in losses_decode:
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

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Mask logits resized bilinearly from the decoder's 4h x 4w to the
        padded input size, (B, 1, H, W). :class:`SAMSegmentor` turns them
        into probabilities before undoing padding and resizing."""
        return super().predict_by_feat(seg_logits, batch_img_metas)
