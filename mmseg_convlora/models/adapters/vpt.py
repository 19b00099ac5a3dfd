"""Deep VPT (Jia et al., ECCV 2022): learnable prompts in every block of
SAM's ViT."""
import contextlib
import math
from typing import List

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from segment_anything.modeling.image_encoder import add_decomposed_rel_pos

from .base_adapter import BaseSAMAdapter, check_positive_int
from .conv_lora import ConvLoRALinear


def token_linear(module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """A (possibly adapted) Linear on tokens (n, C) without a grid."""
    x = tokens.reshape(1, 1, *tokens.shape)
    plain = module.plain_low_rank() if isinstance(
        module, ConvLoRALinear) else contextlib.nullcontext()
    with plain:
        out = module(x)
    return out.reshape(tokens.shape[0], -1)


class PromptedAttention(nn.Module):
    """SAM's ``Attention`` (B, H, W, C) -> (B, H, W, C) whose keys and
    values also hold ``num_tokens`` prompts normalised by the block's
    ``norm``."""

    def __init__(self,
                 attn: nn.Module,
                 norm: nn.Module,
                 num_tokens: int,
                 dropout: float = 0.0):
        super().__init__()
        self.num_heads = attn.num_heads
        self.scale = attn.scale
        self.use_rel_pos = attn.use_rel_pos
        self.qkv = attn.qkv
        self.proj = attn.proj
        if self.use_rel_pos:
            self.rel_pos_h = attn.rel_pos_h
            self.rel_pos_w = attn.rel_pos_w
        self._norm = [norm]  # plain list: norm1 belongs to the block
        dim = self.proj.in_features if hasattr(self.proj, 'in_features') \
            else self.proj.weight.shape[1]
        factory = dict(
            device=self.proj.weight.device, dtype=self.proj.weight.dtype)
        self.num_tokens = num_tokens
        self.prompt = nn.Parameter(torch.empty(num_tokens, dim, **factory))
        self.prompt_dropout = nn.Dropout(dropout) if dropout > 0 \
            else nn.Identity()

    @property
    def norm(self) -> nn.Module:
        return self._norm[0]

    def prompt_kv(self, dtype: torch.dtype):
        """Keys and values of the prompts, each (heads, n, head_dim)."""
        p = self.norm(self.prompt_dropout(self.prompt))
        qkv = token_linear(self.qkv, p).to(dtype)
        qkv = qkv.reshape(self.num_tokens, 3, self.num_heads, -1)
        qkv = qkv.permute(1, 2, 0, 3)  # (3, heads, n, head_dim)
        return qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        L = H * W
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads,
                                  -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.num_heads, L, -1).unbind(0)
        pk, pv = self.prompt_kv(q.dtype)
        n, hd = self.num_tokens, pk.shape[-1]
        pk, pv = (
            t.unsqueeze(0).expand(B, -1, -1, -1).reshape(-1, n, hd)
            for t in (pk, pv))

        qs = q * self.scale
        attn = qs @ k.transpose(-2, -1)  # image keys (B*heads, L, L)
        if self.use_rel_pos:
            attn = add_decomposed_rel_pos(attn, q, self.rel_pos_h,
                                          self.rel_pos_w, (H, W), (H, W))
        attn_p = qs @ pk.transpose(-2, -1)  # prompt keys (B*heads, L, n)
        attn = torch.cat([attn, attn_p], dim=-1).softmax(dim=-1)
        out = attn[..., :L] @ v + attn[..., L:] @ pv
        out = out.view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4)
        return self.proj(out.reshape(B, H, W, -1))

    def extra_repr(self) -> str:
        return (f'num_heads={self.num_heads}, num_tokens={self.num_tokens}, '
                f'use_rel_pos={self.use_rel_pos}')


@MODELS.register_module()
class VPT(BaseSAMAdapter):
    """Deep visual prompt tuning (:class:`PromptedAttention` per block).

    Args:
        num_tokens (int): Prompts per block. Default 12.
        dropout (float): Dropout on the prompts in training. Default 0.
    """

    needs_encoder_grad = True
    replaces_modules = True

    def __init__(self,
                 num_tokens: int = 12,
                 dropout: float = 0.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_positive_int(num_tokens, 'VPT num_tokens')
        self.num_tokens = num_tokens
        self.dropout = dropout
        self._layers: List[PromptedAttention] = []

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        patch = encoder.patch_embed.proj.kernel_size
        dim = encoder.patch_embed.proj.out_channels
        bound = math.sqrt(6.0 / float(3 * patch[0] * patch[1] + dim))
        self._layers = []
        for i, block in enumerate(encoder.blocks):
            attn = block.attn
            if isinstance(attn, PromptedAttention):
                raise ValueError(
                    f'VPT: blocks.{i}.attn already has prompts (two VPT '
                    'adapters in one config?); use one VPT with more '
                    'num_tokens.')
            if not all(hasattr(attn, a) for a in ('qkv', 'proj', 'num_heads')):
                raise ValueError(
                    f'VPT: blocks.{i}.attn is a {type(attn).__name__}, not '
                    "segment_anything's Attention.")
            layer = PromptedAttention(attn, block.norm1, self.num_tokens,
                                      self.dropout)
            with torch.no_grad():
                layer.prompt.uniform_(-bound, bound)
            block.attn = layer
            self._layers.append(layer)
        return list(self._layers)

    @property
    def layers(self) -> List[PromptedAttention]:
        """The :class:`PromptedAttention` modules placed in the encoder."""
        return list(self._layers)
