"""MobileSAM's TinyViT image encoder (Wu et al., ECCV 2022; Zhang et al.
2023), in the key layout of the official ``mobile_sam.pt``."""
import itertools
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d


class Conv2dBN(nn.Sequential):
    """Conv2d without bias (``c``), then BatchNorm2d (``bn``) whose scale
    starts at ``bn_weight_init``."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1,
                 bn_weight_init: float = 1.0):
        super().__init__()
        self.c = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            groups=groups,
            bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)


class TinyViTPatchEmbed(nn.Module):
    """Two stride-2 3x3 conv-BN layers, GELU between: (B, 3, H, W) ->
    (B, embed_dim, H / 4, W / 4)."""

    def __init__(self, in_channels: int, embed_dim: int):
        super().__init__()
        self.seq = nn.Sequential(
            Conv2dBN(in_channels, embed_dim // 2, 3, 2, 1),
            nn.GELU(),
            Conv2dBN(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depth-wise 3x3, 1x1 project."""

    def __init__(self, channels: int, expand_ratio: float):
        super().__init__()
        hidden = int(channels * expand_ratio)
        self.conv1 = Conv2dBN(channels, hidden)
        self.act1 = nn.GELU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2dBN(hidden, channels, bn_weight_init=0.0)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.conv1(x))
        y = self.act2(self.conv2(y))
        return self.act3(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """1x1 conv, depth-wise 3x3 conv with ``stride``, 1x1 conv (GELU
    between)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.act = nn.GELU()
        self.conv1 = Conv2dBN(in_channels, out_channels)
        self.conv2 = Conv2dBN(
            out_channels, out_channels, 3, stride, 1, groups=out_channels)
        self.conv3 = Conv2dBN(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x)


class TinyViTMlp(nn.Module):
    """Pre-norm MLP: LayerNorm, Linear, GELU, Linear."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TinyViTAttention(nn.Module):
    """Pre-norm self-attention over (N, w, w, C) windows with LeViT's
    attention biases per (|dy|, |dx|) offset; ``qkv`` sees the windows as
    maps (Conv-LoRA needs their grid)."""

    def __init__(self, dim: int, num_heads: int, window_size: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'TinyViT: dim={dim} is not divisible by '
                             f'num_heads={num_heads}.')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.window_size = window_size
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window_size), repeat=2))
        offsets, idxs = {}, []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(
            torch.zeros(num_heads, len(offsets)))
        self.register_buffer(
            'attention_bias_idxs',
            torch.tensor(idxs,
                         dtype=torch.long).view(len(points), len(points)),
            persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, h, w, C = x.shape
        qkv = self.qkv(self.norm(x)).view(N, h * w, self.num_heads, -1)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.head_dim, dim=3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = (q @ k.transpose(-2, -1)) * self.scale + bias.to(q.dtype)
        out = attn.softmax(dim=-1) @ v  # (N, heads, L, d)
        out = out.transpose(1, 2).reshape(N, h, w, C)
        return self.proj(out)


class TinyViTBlock(nn.Module):
    """Window attention (map zero-padded to whole windows), depth-wise
    conv-BN, MLP, on (B, H, W, C) maps."""

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 window_size: int,
                 mlp_ratio: float = 4.0,
                 local_conv_size: int = 3):
        super().__init__()
        self.window_size = window_size
        self.attn = TinyViTAttention(dim, num_heads, window_size)
        self.mlp = TinyViTMlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(
            dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        ws = self.window_size
        if H == ws and W == ws:
            return self.attn(x)
        pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (H + pad_b) // ws, (W + pad_r) // ws
        windows = x.reshape(B, nh, ws, nw, ws,
                            C).transpose(2, 3).reshape(B * nh * nw, ws, ws, C)
        out = self.attn(windows)
        out = out.view(B, nh, nw, ws, ws,
                       C).transpose(2, 3).reshape(B, nh * ws, nw * ws, C)
        return out[:, :H, :W]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.window_attention(x)
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class TinyViTStage(nn.Module):
    """A stage's blocks (channels-last for attention stages), then patch
    merging (except in the last stage)."""

    def __init__(self,
                 blocks: Sequence[nn.Module],
                 channels_last: bool,
                 downsample: nn.Module = None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.channels_last = channels_last
        self.downsample = downsample


class TinyViTEncoder(nn.Module):
    """MobileSAM's TinyViT image encoder (four stages) with SAM's neck.

    Args:
        img_size (int): Square input size (a multiple of 16).
        embed_dims, depths, num_heads, window_sizes (Sequence[int]): Per
            stage (stage 0, convolutional, has no heads or windows).
        mlp_ratio, mbconv_expand_ratio (float): Width ratios. Default 4.
        local_conv_size (int): Depth-wise conv kernel. Default 3.
        out_channels (int): Embedding channels (SAM: 256).
    """

    def __init__(self,
                 img_size: int,
                 embed_dims: Sequence[int],
                 depths: Sequence[int],
                 num_heads: Sequence[int],
                 window_sizes: Sequence[int],
                 mlp_ratio: float = 4.0,
                 mbconv_expand_ratio: float = 4.0,
                 local_conv_size: int = 3,
                 out_channels: int = 256):
        super().__init__()
        n = len(embed_dims)
        if not n == len(depths) == len(num_heads) == len(window_sizes) == 4:
            raise ValueError(
                'TinyViT needs four stages: embed_dims, depths, num_heads '
                f'and window_sizes of length 4, got {list(embed_dims)}, '
                f'{list(depths)}, {list(num_heads)}, {list(window_sizes)}.')
        self.img_size = img_size
        self.patch_embed = TinyViTPatchEmbed(3, embed_dims[0])
        strides = (2, 2, 1)
        stages: List[nn.Module] = []
        for i, dim in enumerate(embed_dims):
            blocks = [
                MBConv(dim, mbconv_expand_ratio) if i == 0 else TinyViTBlock(
                    dim, num_heads[i], window_sizes[i], mlp_ratio,
                    local_conv_size) for _ in range(depths[i])
            ]
            downsample = PatchMerging(dim, embed_dims[i + 1], strides[i]) \
                if i < n - 1 else None
            stages.append(TinyViTStage(blocks, i > 0, downsample))
        self.layers = nn.ModuleList(stages)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_channels, 1, bias=False),
            LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            LayerNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding, (B, out_channels, H / 16, W / 16)."""
        return self.forward_features(x)[1]

    def forward_features(
        self,
        x: torch.Tensor,
        run_block: Optional[Callable] = None,
        out_indices: Sequence[int] = (),
        with_neck: bool = True
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """The ``out_indices`` stage outputs (before merging) and the
        embedding (None without ``with_neck``); ``run_block(block, x)``."""
        last = len(self.layers) if with_neck else max(out_indices) + 1
        outs = {}
        x = self.patch_embed(x)
        for i, stage in enumerate(self.layers[:last]):
            if stage.channels_last:
                x = x.permute(0, 2, 3, 1).contiguous()
            for blk in stage.blocks:
                x = blk(x) if run_block is None else run_block(blk, x)
            if stage.channels_last:
                x = x.permute(0, 3, 1, 2)
            if i in out_indices:
                outs[i] = x
            if stage.downsample is not None and i < last - 1:
                x = stage.downsample(x)
        embedding = self.neck(x) if with_neck else None
        return [outs[i] for i in out_indices], embedding
