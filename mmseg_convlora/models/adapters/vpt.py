"""VPT (Jia et al., "Visual Prompt Tuning", ECCV 2022), deep variant:
learnable prompt tokens at the input of every block of SAM's ViT."""
import contextlib
import math
from typing import List, Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from segment_anything.modeling.image_encoder import add_decomposed_rel_pos

from .base_adapter import BaseSAMAdapter
from .conv_lora import ConvLoRALinear


def token_linear(module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Apply a (possibly adapted) Linear to a plain token list.

    ``tokens`` (n, C) are passed as a (1, 1, n, C) map. A
    :class:`ConvLoRALinear` cannot run its convolutional experts on tokens
    without a spatial layout (and must not overwrite its routing statistics
    with them), so for it the linear part ``W x + b + s B A x`` is used (the
    experts' residual ``E(A x)`` is left out); its forward hooks still run.
    Every other module (Linear, LoRALinear, ...) is called as it is.

    Returns:
        Tensor: (n, C_out).
    """
    x = tokens.reshape(1, 1, *tokens.shape)
    plain = module.plain_low_rank() if isinstance(
        module, ConvLoRALinear) else contextlib.nullcontext()
    with plain:
        out = module(x)
    return out.reshape(tokens.shape[0], -1)


class PromptedAttention(nn.Module):
    """SAM's ``Attention`` whose keys and values also include prompts.

    It takes over the frozen ``qkv``, ``proj``, ``rel_pos_h`` and
    ``rel_pos_w`` of the attention it replaces (same objects, so their state
    dict keys stay ``blocks.i.attn.qkv.weight`` etc., and LoRA/Conv-LoRA
    applied before or after still find ``blocks.i.attn.qkv``) and owns the
    block's ``prompt`` (n, C).

    Every call, i.e. the whole grid in global blocks and *each window* in
    windowed blocks (the block partitions before calling attention), the n
    prompt tokens, normalised by the block's ``norm1`` like any block input,
    are appended to the keys and values. Queries are the image tokens only
    and SAM's relative position bias applies between image tokens only
    (prompts have no position). This equals deep VPT, where prompts are
    prepended to the block input and their outputs discarded: only their
    keys and values can reach the image tokens.

    Args:
        attn (nn.Module): The ``segment_anything`` ``Attention`` to replace.
        norm (nn.Module): The block's ``norm1`` (kept as a plain reference,
            not a sub-module).
        num_tokens (int): n.
        dropout (float): Dropout on the prompts in training. Default 0.
    """

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
        pk = pk.unsqueeze(0).expand(B, -1, -1, -1).reshape(-1, n, hd)
        pv = pv.unsqueeze(0).expand(B, -1, -1, -1).reshape(-1, n, hd)

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
    """Deep visual prompt tuning on SAM's ViT.

    Each block gets ``num_tokens`` learnable prompts (n x C). SAM's ViT has
    no sequence dimension (tokens stay on the (h, w) grid) and most of its
    blocks attend within 14 x 14 windows, so the prompts cannot simply be
    concatenated to the token sequence. Instead each block's ``attn`` is
    replaced by a :class:`PromptedAttention` that appends the block's
    (``norm1``-normalised) prompts to the keys and values: in global blocks
    once, in windowed blocks to every window (all windows of a block share
    its prompts). Since deep VPT discards the prompts' outputs at every
    block, this is exactly VPT for the image tokens, without running the MLP
    on tokens that are thrown away, and the grid/window layout, padding and
    relative position bias of SAM stay as they are.

    Prompts are initialised like VPT, uniform in ``+-sqrt(6 / (3 p^2 +
    C))`` (p = patch size). Start state: **not** the identity: from the
    first step the image tokens also attend to the prompts (as in VPT).

    Composition: the replaced attention keeps its children's names, so
    LoRA/Conv-LoRA (on ``blocks.i.attn.qkv``) and the hook-based adapters
    work listed before or after VPT. With Conv-LoRA on ``qkv`` the prompts'
    keys/values use its linear low-rank part only (see
    :func:`token_linear`); its routing is computed on the image tokens.

    Parameters: depth x n x C. ViT-H with n = 12: 491,520, so 3,997,056
    trainable with the binary decoder (paper: 4.00M). Conv-LoRA + VPT with
    n = 5 (204,800): 4,224,896 (paper's Table 12: 4.23M).

    Args:
        num_tokens (int): Prompts per block. Default 12.
        dropout (float): Dropout on the prompts in training. Default 0.
        init_cfg (dict, optional): Unused.
    """

    needs_encoder_grad = True
    replaces_modules = True

    def __init__(self,
                 num_tokens: int = 12,
                 dropout: float = 0.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_tokens, int) or num_tokens <= 0:
            raise ValueError(f'VPT num_tokens must be a positive integer, '
                             f'got {num_tokens!r}.')
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

    def prompts(self) -> Optional[torch.Tensor]:
        """All prompts, (depth, n, C) (a copy)."""
        if not self._layers:
            return None
        return torch.stack([layer.prompt.detach() for layer in self._layers])
