"""CAD: a parallel convolutional adapter on SAM's image embedding."""
import logging
import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmseg.registry import MODELS

from .base_adapter import BaseSAMAdapter


def high_frequency_components(x: torch.Tensor,
                              rate: float = 0.25) -> torch.Tensor:
    """``|ifft2(fft2(x) * high-pass)|`` of (B, C, H, W) images, float32;
    the high-pass zeroes the centred ``rate`` of the shifted spectrum."""
    H, W = x.shape[-2:]
    half = int(math.sqrt(H * W * rate) // 2)
    spec = torch.fft.fftshift(
        torch.fft.fft2(x.float(), norm='forward'), dim=(-2, -1))
    keep = torch.ones(H, W, device=x.device)
    keep[H // 2 - half:H // 2 + half, W // 2 - half:W // 2 + half] = 0
    spec = spec * keep
    out = torch.fft.ifft2(
        torch.fft.ifftshift(spec, dim=(-2, -1)), norm='forward')
    return out.real.abs()


class CADBlock(nn.Module):
    """3x3 dilated conv, norm, LeakyReLU(0.1), residual, 2x2 average pool:
    (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int, norm_cfg: dict):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=2, dilation=2)
        self.norm_name, norm = build_norm_layer(norm_cfg, channels)
        self.add_module(self.norm_name, norm)
        self.act = nn.LeakyReLU(0.1)

    @property
    def norm(self) -> nn.Module:
        return getattr(self, self.norm_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm(self.conv(x))) + x
        return F.avg_pool2d(y, 2)


@MODELS.register_module()
class CAD(BaseSAMAdapter):
    """A parallel CNN whose output is added to the frozen image embedding:
    :meth:`adapter_input` -> 1x1 conv -> ``num_blocks`` :class:`CADBlock`.

    Args:
        channels (int): Hidden width = the embedding's channels. Default 256.
        num_blocks (int): Number of blocks. Default 3.
        input_size (int): Square size of the adapter input. Default 512.
        hf_rate (float): Spectrum fraction the high-pass removes. 0.25.
        out_scale (float): Output bound. Default 0.1.
        mean, std (Sequence[float]): The network input's normalisation.
        norm_cfg (dict): Norm layer config. Default ``dict(type='BN')``.
    """

    applies_to = 'sam'

    def __init__(self,
                 channels: int = 256,
                 num_blocks: int = 3,
                 input_size: int = 512,
                 hf_rate: float = 0.25,
                 out_scale: float = 0.1,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 norm_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_blocks < 1:
            raise ValueError(f'CAD needs num_blocks >= 1, got {num_blocks}.')
        if input_size % (2**num_blocks):
            raise ValueError(f'CAD input_size={input_size} must be divisible '
                             f'by 2**num_blocks={2**num_blocks}.')
        self.channels = channels
        self.num_blocks = num_blocks
        self.input_size = input_size
        self.hf_rate = hf_rate
        self.out_scale = out_scale
        self.norm_cfg = dict(norm_cfg or dict(type='BN'))
        # non-persistent: they come from the config, not from training
        for name, value in (('mean', mean), ('std', std)):
            value = torch.tensor(value, dtype=torch.float32)
            self.register_buffer(
                name, value.view(1, -1, 1, 1), persistent=False)
        self._warned_fallback = False
        self.stem = nn.Conv2d(6, channels, 1)
        self.blocks = nn.ModuleList(
            CADBlock(channels, self.norm_cfg) for _ in range(num_blocks))
        self._init_parameters()

    def _init_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._NormBase):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        neck = getattr(encoder, 'neck', None)
        if isinstance(neck, nn.Sequential) and len(neck):
            self._check_channels(getattr(neck[0], 'out_channels', None))
        return []

    def _check_channels(self, embed_channels: Optional[int]) -> None:
        if embed_channels not in (None, self.channels):
            raise ValueError(
                f'CAD adds a {self.channels}-channel map to the image '
                f'embedding, but the embedding has {embed_channels} '
                f'channels. Set channels={embed_channels} in the CAD adapter '
                f'config (SAM: 256).')

    def input_image(self,
                    inputs: torch.Tensor,
                    data_samples: Optional[Sequence] = None) -> torch.Tensor:
        """The RGB input (B, 3, S, S), 0..255 float32: the samples'
        ``cad_image``, else ``inputs`` (B, 3, H, W) unnormalised, resized."""
        size = (self.input_size, self.input_size)
        kept = self._kept_images(data_samples)
        if kept is not None:
            if tuple(kept.shape[-2:]) != size or \
                    kept.shape[0] != inputs.shape[0]:
                raise ValueError(
                    f'The data samples carry {tuple(kept.shape)} images for '
                    f'CAD, expected ({inputs.shape[0]}, 3, {size[0]}, '
                    f'{size[1]}): set ResizeCADImage size={size[0]} in the '
                    'pipeline (it must equal the CAD input_size).')
            return kept.to(device=inputs.device, dtype=torch.float32)
        x = inputs.float() * self.std + self.mean  # back to 0..255
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(
                x, size=size, mode='bilinear', align_corners=False)
        return x

    def _kept_images(
            self, data_samples: Optional[Sequence]) -> Optional[torch.Tensor]:
        """The stacked ``cad_image`` of the data samples, or None."""
        if not data_samples:
            return None
        kept = ['cad_image' in sample for sample in data_samples]
        if all(kept):
            return torch.stack([sample.cad_image for sample in data_samples])
        if any(kept):
            raise ValueError(
                f'Only {sum(kept)} of {len(kept)} data samples carry the '
                'image kept for CAD (cad_image); every pipeline of the '
                'config (train, val, test) needs ResizeCADImage and '
                'PackCADInputs, or none does.')
        if not self._warned_fallback:
            self._warned_fallback = True
            print_log(
                'CAD: no cad_image in the data samples, so the adapter input '
                'is the network input resized, not the original image: add '
                f"dict(type='ResizeCADImage', size={self.input_size}) after "
                'loading the image and PackCADInputs (see configs/cad/).',
                logger='current',
                level=logging.WARNING)
        return None

    def adapter_input(self,
                      inputs: torch.Tensor,
                      data_samples: Optional[Sequence] = None,
                      image: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The image (``image`` if given, else :meth:`input_image`) and its
        high-frequency components, each channel max-normalised, (B, 6, S,
        S)."""
        x = self.input_image(inputs, data_samples) if image is None \
            else image.float()
        x = torch.cat([x, high_frequency_components(x, self.hf_rate)], dim=1)
        return x / (x.amax(dim=(2, 3), keepdim=True) + 1e-5)

    def adapter_output(self,
                       inputs: torch.Tensor,
                       size: Sequence[int],
                       data_samples: Optional[Sequence] = None,
                       image: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``out_scale * tanh(sum of pooled block outputs)``, (B, C, *size);
        ``image`` as in :meth:`adapter_input`."""
        x = self.stem(self.adapter_input(inputs, data_samples, image))
        out = 0
        for block in self.blocks:
            x = block(x)
            out = out + F.adaptive_avg_pool2d(x, tuple(size))
        return torch.tanh(out) * self.out_scale

    def forward_embedding(
            self,
            inputs: torch.Tensor,
            embedding: torch.Tensor,
            data_samples: Optional[Sequence] = None) -> torch.Tensor:
        self._check_channels(embedding.shape[1])
        delta = self.adapter_output(inputs, embedding.shape[-2:], data_samples)
        return embedding + delta.to(embedding.dtype)
