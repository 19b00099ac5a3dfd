"""SAM's mask decoder as a prompt-free mmseg decode head."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from segment_anything.modeling import (MaskDecoder, PromptEncoder,
                                       TwoWayTransformer)
from torch import Tensor

from ..losses.mask_classification_loss import semantic_inference
from ..utils import SAMCheckpointError, load_sam_state_dict, sub_state_dict


@MODELS.register_module()
class SAMMaskDecoderHead(BaseDecodeHead):
    """SAM's mask decoder driven by learned mask tokens instead of prompts.

    The frozen prompt encoder receives no prompts: there are no sparse
    tokens, the dense embedding is the learned ``no_mask_embed`` broadcast
    over the embedding grid and the positional encoding is SAM's random
    Fourier encoding of the grid. Everything else of the mask decoder
    (two-way transformer, upscaling, hypernetwork MLP #0, the IoU token)
    trains; the IoU prediction head is frozen and unused.

    **Binary** (``out_channels=1``, ``num_classes=2``): one trainable mask
    token initialised from SAM's single-mask token 0 with hypernetwork MLP
    #0. SAM's three multi-mask tokens stay in the token sequence, frozen,
    with their outputs discarded (``keep_sam_multimask_tokens=True``), so
    that at initialisation the head computes exactly SAM's
    ``multimask_output=False`` mask. Set it to False to drop them (the
    sequence then holds only the IoU token and the mask token). Either way
    the trainable parameters are 3,505,536 for SAM's decoder.

    **Multi-class** (``out_channels=num_classes=K > 1``, Mask2Former style):
    ``num_queries`` mask tokens, all copies of SAM's token 0, sharing
    hypernetwork MLP #0, and a classification branch ``Linear(C, K + 1)``
    (index K = no object). The semantic map is
    ``sum_q softmax(cls_q)[:K] * sigmoid(mask_q)``. Train it with
    :class:`MaskClassificationLoss`.

    Args:
        num_classes (int): 2 for binary, else the number of classes K.
        out_channels (int): 1 for binary, else K.
        img_size (int): Square network input size (1024 for SAM).
        checkpoint (str, optional): Official SAM checkpoint; its
            ``prompt_encoder.*`` and ``mask_decoder.*`` weights are loaded.
        embed_dim (int): Transformer dim of the decoder (SAM: 256).
        decoder (dict): ``depth``, ``mlp_dim``, ``num_heads`` of SAM's
            two-way transformer (2, 2048, 8) and ``iou_head_hidden_dim``.
        num_queries (int): Mask tokens in multi-class mode (default 10).
        keep_sam_multimask_tokens (bool, optional): See above; default True
            in binary mode, False in multi-class mode.
        threshold (float): Foreground threshold on the probability (binary).
        loss_decode (dict | list[dict]): Loss config(s).

    Shapes:
        input: tuple with the image embedding (B, embed_dim, h, w),
        h = w = img_size / 16.
        binary output: mask logits (B, 1, 4h, 4w);
        multi-class output: (class logits (B, N, K + 1),
        mask logits (B, N, 4h, 4w)).
    """

    def __init__(self,
                 num_classes: int = 2,
                 out_channels: Optional[int] = 1,
                 img_size: int = 1024,
                 checkpoint: Optional[str] = None,
                 embed_dim: int = 256,
                 decoder: Optional[dict] = None,
                 num_queries: int = 10,
                 keep_sam_multimask_tokens: Optional[bool] = None,
                 threshold: Optional[float] = 0.5,
                 loss_decode: Union[dict, Sequence[dict]] = dict(
                     type='StructureLoss'),
                 ignore_index: int = 255,
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(
            in_channels=embed_dim,
            channels=embed_dim,
            num_classes=num_classes,
            out_channels=out_channels,
            threshold=threshold,
            loss_decode=loss_decode,
            ignore_index=ignore_index,
            align_corners=align_corners,
            init_cfg=init_cfg,
            **kwargs)
        # BaseDecodeHead's 1x1 classifier has no role in SAM's decoder.
        del self.conv_seg
        self.binary = self.out_channels == 1
        decoder = dict(
            dict(depth=2, mlp_dim=2048, num_heads=8, iou_head_hidden_dim=256),
            **(decoder or {}))
        grid = img_size // 16
        self.img_size = img_size
        self.embed_dim = embed_dim
        self.prompt_encoder = PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=16)
        self.mask_decoder = MaskDecoder(
            transformer_dim=embed_dim,
            transformer=TwoWayTransformer(
                depth=decoder['depth'],
                embedding_dim=embed_dim,
                mlp_dim=decoder['mlp_dim'],
                num_heads=decoder['num_heads']),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=decoder['iou_head_hidden_dim'])
        if checkpoint is not None:
            self.load_sam_checkpoint(checkpoint)

        self.prompt_encoder.requires_grad_(False)
        md = self.mask_decoder
        md.iou_prediction_head.requires_grad_(False)
        sam_tokens = md.mask_tokens.weight.detach()
        if keep_sam_multimask_tokens is None:
            keep_sam_multimask_tokens = self.binary
        self.keep_sam_multimask_tokens = keep_sam_multimask_tokens
        self.num_queries = 1 if self.binary else num_queries
        # Every query starts as SAM's single-mask token 0.
        self.query_tokens = nn.Parameter(
            sam_tokens[0:1].repeat(self.num_queries, 1).clone())
        if keep_sam_multimask_tokens:
            self.register_buffer(
                'sam_multimask_tokens', sam_tokens[1:].clone(),
                persistent=True)
        else:
            self.sam_multimask_tokens = None
        # Replaced by ``query_tokens``; hypernetwork MLPs 1..3 are unused.
        del md.mask_tokens
        md.output_hypernetworks_mlps = nn.ModuleList(
            [md.output_hypernetworks_mlps[0]])
        if not self.binary:
            self.cls_embed = nn.Linear(embed_dim, self.num_classes + 1)

    def load_sam_checkpoint(self, path: str) -> None:
        """Load ``prompt_encoder.*`` and ``mask_decoder.*`` of a SAM file."""
        full = load_sam_state_dict(path)
        for name in ('prompt_encoder', 'mask_decoder'):
            module = getattr(self, name)
            state = sub_state_dict(full, name + '.')
            if name == 'prompt_encoder':
                # The mask-prompt branch is sized for the pretrained input;
                # it is never used without prompts.
                own = module.state_dict()
                state = {k: v for k, v in state.items()
                         if k in own and own[k].shape == v.shape}
            try:
                missing, unexpected = module.load_state_dict(
                    state, strict=False)
            except RuntimeError as err:
                raise SAMCheckpointError(
                    f'The {name} weights in {path!r} do not fit this head '
                    f'(embed_dim={self.embed_dim}): {err}') from err
            missing = [k for k in missing
                       if not k.startswith('mask_downscaling')]
            if missing or unexpected:
                raise SAMCheckpointError(
                    f'The {name} weights in {path!r} do not fit this head: '
                    f'missing {missing[:8]}, unexpected {unexpected[:8]}.')

    # ------------------------------------------------------------------ #
    def forward(self, inputs: Sequence[Tensor]
                ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Run the prompt-free mask decoder.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the first is the
                image embedding (B, C, h, w).

        Returns:
            Tensor | tuple[Tensor, Tensor]: Binary: mask logits
            (B, 1, 4h, 4w). Multi-class: class logits (B, N, K + 1) and mask
            logits (B, N, 4h, 4w).
        """
        embedding = inputs[0]
        B, C, h, w = embedding.shape
        md = self.mask_decoder
        pe_layer = self.prompt_encoder.pe_layer
        image_pe = pe_layer((h, w)).unsqueeze(0).to(embedding.dtype)
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)

        tokens = [md.iou_token.weight, self.query_tokens]
        if self.sam_multimask_tokens is not None:
            tokens.append(self.sam_multimask_tokens)
        tokens = torch.cat(tokens, dim=0).unsqueeze(0).expand(B, -1, -1)
        src = embedding + dense.to(embedding.dtype)
        pos_src = image_pe.expand(B, -1, -1, -1)
        hs, src = md.transformer(src, pos_src, tokens)
        query_out = hs[:, 1:1 + self.num_queries, :]

        src = src.transpose(1, 2).reshape(B, C, h, w)
        upscaled = md.output_upscaling(src)
        hyper_in = md.output_hypernetworks_mlps[0](query_out)
        b, c, H, W = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, H * W)).view(b, -1, H, W)
        if self.binary:
            return masks
        return self.cls_embed(query_out), masks

    # ------------------------------------------------------------------ #
    def loss_by_feat(self, seg_logits, batch_data_samples: SampleList
                     ) -> Dict[str, Tensor]:
        """Compute the losses.

        Binary: the mask logits are upsampled (bilinear) to the padded input
        size and every ``loss_decode`` gets ``(logits (B, 1, H, W),
        labels (B, H, W))`` with labels 0/1 and ``ignore_index``.
        Multi-class: the mask-classification loss receives class logits,
        low-resolution mask logits and the labels.
        """
        seg_label = self._stack_batch_gt(batch_data_samples).squeeze(1)
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        loss = dict()
        if not self.binary:
            cls_logits, mask_logits = seg_logits
            for loss_module in losses_decode:
                for name, value in loss_module(cls_logits, mask_logits,
                                               seg_label).items():
                    loss[name] = loss.get(name, 0) + value
            return loss

        seg_logits = resize(
            seg_logits,
            size=seg_label.shape[-2:],
            mode='bilinear',
            align_corners=self.align_corners)
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

    def predict_by_feat(self, seg_logits, batch_img_metas: List[dict]
                        ) -> Tensor:
        """Scores at the (padded) input size.

        Returns:
            Tensor: Binary: mask logits (B, 1, H, W). Multi-class: semantic
            scores ``sum_q softmax(cls_q)[c] * sigmoid(mask_q)`` (B, K, H, W),
            resized bilinearly from the decoder's resolution.
        """
        if not self.binary:
            cls_logits, mask_logits = seg_logits
            seg_logits = semantic_inference(cls_logits, mask_logits)
        return super().predict_by_feat(seg_logits, batch_img_metas)

