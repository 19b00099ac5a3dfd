"""What the binary and the multi-class SAM heads share."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from segment_anything.modeling import (MaskDecoder, PromptEncoder,
                                       TwoWayTransformer)
from torch import Tensor

from ..utils.sam_checkpoint import (SAMCheckpointError, load_sam_part,
                                    load_sam_state_dict, sub_state_dict)


class BaseSAMMaskDecoderHead(BaseDecodeHead):
    """SAM's prompt encoder and mask decoder driven by learned query tokens:
    ``[IoU token, N query tokens (, SAM's 3 multi-mask tokens)]``, then
    prompt tokens (docs/prompts.md).

    Args:
        num_queries (int): Number of query tokens N.
        keep_sam_multimask_tokens (bool): Keep SAM's multi-mask tokens 1..3
            in the sequence (frozen buffer ``sam_multimask_tokens``).
        loss_decode (dict | list[dict]): Loss config(s).
        img_size (int): Square network input size (1024 for SAM).
        checkpoint (str, optional): Official SAM checkpoint; its
            ``prompt_encoder.*`` and ``mask_decoder.*`` weights are loaded.
        embed_dim (int): Decoder width (SAM: 256).
        decoder (dict, optional): ``depth``, ``mlp_dim``, ``num_heads``,
            ``iou_head_hidden_dim`` (SAM: 2, 2048, 8, 256).
        in_index (int): Backbone output of the embedding. Default -1.
        sampler, input_transform (None): Must be None.
        **kwargs: Passed to :class:`BaseDecodeHead`.
    """

    def __init__(self,
                 num_classes: int,
                 out_channels: Optional[int],
                 num_queries: int,
                 keep_sam_multimask_tokens: bool,
                 loss_decode: Union[dict, Sequence[dict]],
                 img_size: int = 1024,
                 checkpoint: Optional[str] = None,
                 embed_dim: int = 256,
                 decoder: Optional[dict] = None,
                 sampler: Optional[dict] = None,
                 in_index: int = -1,
                 input_transform: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        if input_transform is not None or not isinstance(in_index, int):
            raise ValueError(
                f'{type(self).__name__} reads one image embedding, the '
                f'backbone output in_index (an int, default -1: the SAM '
                f"backbone's neck embedding, last); got in_index={in_index!r}"
                f', input_transform={input_transform!r}. Remove '
                'input_transform and give one index.')
        if sampler is not None:
            raise ValueError(
                f'{type(self).__name__} takes no mmseg pixel sampler (got '
                f'sampler={sampler!r}): its losses are image-level or sample '
                'their own points. Remove it from the decode_head config.')
        if num_queries < 1:
            raise ValueError(f'num_queries must be >= 1, got {num_queries}.')
        super().__init__(
            in_channels=embed_dim,
            channels=embed_dim,
            num_classes=num_classes,
            out_channels=out_channels,
            in_index=in_index,
            init_cfg=init_cfg,
            loss_decode=[],
            **kwargs)
        # built here, not by BaseDecodeHead's deprecated ``build_loss``
        if isinstance(loss_decode, dict):
            self.loss_decode = MODELS.build(loss_decode)
        else:
            self.loss_decode = nn.ModuleList(map(MODELS.build, loss_decode))
        # BaseDecodeHead's 1x1 classifier has no role in SAM's decoder.
        del self.conv_seg
        decoder = dict(
            dict(depth=2, mlp_dim=2048, num_heads=8, iou_head_hidden_dim=256),
            **(decoder or {}))
        grid = img_size // 16
        self.img_size = img_size
        self.embed_dim = embed_dim
        self.num_queries = num_queries
        self.keep_sam_multimask_tokens = keep_sam_multimask_tokens
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
        self.query_tokens = nn.Parameter(sam_tokens[0:1].repeat(
            num_queries, 1).clone())
        # None (no buffer, not in the state dict) without the tokens
        self.register_buffer(
            'sam_multimask_tokens',
            sam_tokens[1:].clone() if keep_sam_multimask_tokens else None)
        del md.mask_tokens
        md.output_hypernetworks_mlps = nn.ModuleList(
            [md.output_hypernetworks_mlps[0]])

    def load_sam_checkpoint(self, path: str) -> None:
        """Load ``prompt_encoder.*`` and ``mask_decoder.*`` of a SAM file."""
        full = load_sam_state_dict(path)
        for name in ('prompt_encoder', 'mask_decoder'):
            module = getattr(self, name)
            state = sub_state_dict(full, name + '.')
            if name == 'prompt_encoder':
                own = module.state_dict()
                state = {
                    k: v
                    for k, v in state.items()
                    if k in own and own[k].shape == v.shape
                }
            load_sam_part(
                module, state,
                f'The {name} weights in {path!r} do not fit this head '
                f'(embed_dim={self.embed_dim})', ('mask_downscaling', ))

    def decode_queries(
        self,
        inputs: Sequence[Tensor],
        prompts: Optional[Sequence[Optional[dict]]] = None
    ) -> Tuple[Tensor, Tensor]:
        """Query outputs (B, N, C) and mask logits (B, N, 4h, 4w) of the
        embedding (B, C, h, w); ``prompts``: None or one per image."""
        embedding = self.image_embedding(inputs)
        if prompts is None or all(p is None for p in prompts):
            return self._decode(embedding, None)
        sparse = [self.embed_prompt(p, embedding) for p in prompts]
        # images with as many prompt tokens decode together; an image
        # without a prompt decodes exactly as in the prompt-free path
        order, outs = [], []
        for n in sorted({s.shape[0] for s in sparse}):
            idx = [i for i, s in enumerate(sparse) if s.shape[0] == n]
            order += idx
            outs.append(
                self._decode(embedding[idx],
                             torch.stack([sparse[i] for i in idx])))
        inverse = torch.argsort(torch.tensor(order))
        return tuple(
            torch.cat(parts)[inverse.to(embedding.device)]
            for parts in zip(*outs))

    def embed_prompt(self, prompt: Optional[dict],
                     embedding: Tensor) -> Tensor:
        """SAM's sparse prompt tokens (T, C) of one prompt (T = 0: none)."""
        if prompt is None:
            return self.query_tokens.new_zeros(0, self.embed_dim)
        device = embedding.device
        points = None
        if 'point_coords' in prompt:
            points = (prompt['point_coords'][None].to(device),
                      prompt['point_labels'][None].to(device))
        boxes = prompt.get('boxes')
        if boxes is not None:
            boxes = boxes.reshape(1, 4).to(device)
        return self.prompt_encoder(points, boxes, None)[0][0]

    def _decode(self, embedding: Tensor,
                sparse: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        B, C, h, w = embedding.shape
        md = self.mask_decoder
        pe_layer = self.prompt_encoder.pe_layer
        image_pe = pe_layer((h, w)).unsqueeze(0).to(embedding.dtype)
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)

        tokens = [md.iou_token.weight, self.query_tokens]
        if self.sam_multimask_tokens is not None:
            tokens.append(self.sam_multimask_tokens)
        tokens = torch.cat(tokens, dim=0).unsqueeze(0).expand(B, -1, -1)
        if sparse is not None:  # SAM's order: output tokens, then prompts
            tokens = torch.cat([tokens, sparse.to(tokens.dtype)], dim=1)
        src = embedding + dense.to(embedding.dtype)
        pos_src = image_pe.expand(B, -1, -1, -1)
        hs, src = md.transformer(src, pos_src, tokens)
        query_out = hs[:, 1:1 + self.num_queries, :]

        src = src.transpose(1, 2).reshape(B, C, h, w)
        upscaled = md.output_upscaling(src)
        hyper_in = md.output_hypernetworks_mlps[0](query_out)
        b, c, H, W = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, H * W)).view(b, -1, H, W)
        return query_out, masks

    def loss_modules(self) -> List[nn.Module]:
        """The loss modules of ``loss_decode``."""
        if isinstance(self.loss_decode, nn.ModuleList):
            return list(self.loss_decode)
        return [self.loss_decode]

    def image_embedding(self, inputs: Sequence[Tensor]) -> Tensor:
        """``inputs[in_index]``, checked to have ``embed_dim`` channels."""
        embedding = inputs[self.in_index]
        if embedding.dim() != 4 or embedding.shape[1] != self.embed_dim:
            raise ValueError(
                f'{type(self).__name__} reads backbone output in_index='
                f'{self.in_index} of {len(inputs)}, shape '
                f'{tuple(embedding.shape)}, not the image embedding (B, '
                f'{self.embed_dim}, h, w), which the SAM backbone returns '
                'last: keep out_embedding=True and in_index=-1.')
        return embedding

    def state_dict_mismatch(self, state_dict, prefix: str = ''):
        """Why trained weights of this head cannot load, or None."""
        if prefix + 'query_tokens' not in state_dict:
            return None
        had = prefix + 'sam_multimask_tokens' in state_dict
        if had == self.keep_sam_multimask_tokens:
            return None
        return (f"its decode head was trained {'with' if had else 'without'}"
                " SAM's three multi-mask tokens in its token sequence, this "
                f"model is built {'without' if had else 'with'} them: set "
                f'model.decode_head.keep_sam_multimask_tokens={had} to load '
                'it')

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        mismatch = self.state_dict_mismatch(state_dict, prefix)
        if mismatch:
            raise SAMCheckpointError(f'The checkpoint: {mismatch}.')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
