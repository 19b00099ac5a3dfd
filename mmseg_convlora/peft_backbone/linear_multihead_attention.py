"""``nn.MultiheadAttention`` whose projections are called Linear layers."""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros_like(
            mask, dtype=dtype).masked_fill(mask, float('-inf'))
    return mask.to(dtype)


class LinearMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with ``q_proj``, ``k_proj``, ``v_proj`` and
    ``out_proj`` Linear layers that adapters can wrap.

    Same arguments, results and state dicts, but no attention weights are
    returned and ``add_bias_kv``/``add_zero_attn`` are not supported.
    """

    def __init__(self,
                 embed_dim: int,
                 num_heads: int,
                 dropout: float = 0.0,
                 bias: bool = True,
                 kdim: Optional[int] = None,
                 vdim: Optional[int] = None,
                 batch_first: bool = False,
                 device=None,
                 dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim={embed_dim} is not divisible by '
                             f'num_heads={num_heads}.')
        factory = dict(device=device, dtype=dtype)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(
            kdim or embed_dim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(
            vdim or embed_dim, embed_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)

    @classmethod
    def from_multihead_attention(
            cls, mha: nn.MultiheadAttention) -> 'LinearMultiheadAttention':
        """The same attention (weights copied, ``requires_grad`` kept)."""
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(
                'LinearMultiheadAttention does not support nn.'
                'MultiheadAttention with add_bias_kv or add_zero_attn.')
        weight = mha.out_proj.weight
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, mha.dropout, bias, mha.kdim,
                  mha.vdim, mha.batch_first, weight.device, weight.dtype)
        new.load_state_dict(mha.state_dict())
        new.requires_grad_(weight.requires_grad)
        new.train(mha.training)
        return new

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept ``nn.MultiheadAttention``'s keys (fused or per input)."""
        for kind in ('weight', 'bias'):
            fused = f'{prefix}in_proj_{kind}'
            if fused in state_dict:
                for name, part in zip('qkv', state_dict.pop(fused).chunk(3)):
                    state_dict[f'{prefix}{name}_proj.{kind}'] = part
        for name in 'qkv':
            separate = f'{prefix}{name}_proj_weight'
            if separate in state_dict:
                state_dict[f'{prefix}{name}_proj.weight'] = \
                    state_dict.pop(separate)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self,
                query: torch.Tensor,
                key: torch.Tensor,
                value: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None,
                need_weights: bool = True,
                attn_mask: Optional[torch.Tensor] = None,
                average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[torch.Tensor, None]:
        """Attention output and None (the weights are not computed)."""
        if not self.batch_first:
            query, key, value = (
                t.transpose(0, 1) for t in (query, key, value))
        B, L, _ = query.shape
        S = key.shape[1]
        heads, dim = self.num_heads, self.head_dim
        # Projections on batch-first (B, L, C) sequences, the layout the
        # backbone's other Linear layers see (Conv-LoRA's token grids).
        q = self.q_proj(query).view(B, L, heads, dim).transpose(1, 2)
        k = self.k_proj(key).view(B, S, heads, dim).transpose(1, 2)
        v = self.v_proj(value).view(B, S, heads, dim).transpose(1, 2)
        mask = None  # both masks as one additive (B, heads, L, S)
        if attn_mask is not None:
            mask = _additive(attn_mask, q.dtype)
            mask = mask.view(1, 1, L, S) if mask.dim() == 2 else \
                mask.view(B, heads, L, S)
        if key_padding_mask is not None:
            padding = _additive(key_padding_mask, q.dtype).view(B, 1, 1, S)
            mask = padding if mask is None else mask + padding
        dropout = self.dropout if self.training else 0.0
        causal = is_causal and mask is None
        out = F.scaled_dot_product_attention(q, k, v, mask, dropout, causal)
        out = self.out_proj(out.transpose(1, 2).reshape(B, L, -1))
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, None

    def extra_repr(self) -> str:
        return (f'embed_dim={self.embed_dim}, num_heads={self.num_heads}, '
                f'dropout={self.dropout}, batch_first={self.batch_first}')


def replace_multihead_attention(module: nn.Module) -> List[str]:
    """Swap every ``nn.MultiheadAttention`` inside ``module`` for an equal
    :class:`LinearMultiheadAttention`; return the names replaced."""
    names = [
        name for name, child in module.named_modules()
        if name and isinstance(child, nn.MultiheadAttention)
    ]
    for name in names:
        parent_name, _, attr = name.rpartition('.')
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(
            parent, attr,
            LinearMultiheadAttention.from_multihead_attention(
                getattr(parent, attr)))
    return names
