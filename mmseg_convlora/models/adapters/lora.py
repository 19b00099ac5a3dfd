"""LoRA (Hu et al., ICLR 2022), and what LoRA and Conv-LoRA share."""
import math
from functools import partialmethod
from typing import Callable, Dict, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from ..utils.fused_lora_linear import (autocast_off, fused_lora_linear,
                                       matmul_dtype)
from .base_adapter import BaseSAMAdapter, check_positive_int
from .targets import encoder_description, match_targets

DEFAULT_TARGETS = r'blocks\.\d+\.attn\.qkv'


class LowRankLinear(nn.Module):
    """A frozen Linear ``base`` plus ``lora_A`` (r, in) and ``lora_B``
    (out, r), scaled by ``alpha / rank``; ``dropout`` on their input."""

    def __init__(self,
                 base: nn.Linear,
                 rank: int = 3,
                 alpha: float = 32,
                 dropout: float = 0.0):
        super().__init__()
        check_positive_int(rank, f'{type(self).__name__} rank')
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(
            torch.empty(rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(
            torch.empty(self.out_features, rank, **factory))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 \
            else nn.Identity()
        # A like nn.Linear's weight, B zeros
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def fused_linear(self, tokens: torch.Tensor, u: torch.Tensor,
                     dtype: torch.dtype) -> torch.Tensor:
        """``tokens W^T + b + s u B^T`` in one GEMM in ``dtype`` (the one
        F.linear would use: autocast's, if on), (T, out_features)."""
        with autocast_off(tokens.device):
            bias = None if self.bias is None else self.bias.to(dtype)
            return fused_lora_linear(
                tokens.to(dtype), u.to(dtype), self.weight.to(dtype), bias,
                self.lora_B.to(dtype), self.scaling)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, '
                f'bias={self.bias is not None}, rank={self.rank}, '
                f'scaling={self.scaling:g}')


class LoRALinear(LowRankLinear):
    """``y = W x + b + (alpha / r) B A dropout(x)`` around a frozen Linear,
    (..., in_features) -> (..., out_features)."""

    merged = False  # set per instance by merge/unmerge

    @torch.no_grad()
    def _set_merged(self, merged: bool) -> None:
        if merged == self.merged:
            return
        delta = (self.scaling * (self.lora_B @ self.lora_A)).float()
        weight = self.weight.float() + (delta if merged else -delta)
        self.weight.copy_(weight.to(self.weight.dtype))
        self.merged = merged

    # merge() adds the low-rank update into the frozen weight (in place);
    # unmerge() undoes it (exact up to float rounding)
    merge = partialmethod(_set_merged, True)
    unmerge = partialmethod(_set_merged, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            if self.training and torch.is_grad_enabled() and \
                    self.lora_B.requires_grad:
                # A merged layer would silently train nothing.
                raise RuntimeError(
                    'LoRALinear is merged into its frozen weight; call '
                    'unmerge() (LoRA.unmerge()) before training.')
            return F.linear(x, self.weight, self.bias)
        if not self.training:
            # One matmul with the merged weight, built without touching W.
            weight = torch.addmm(
                self.weight, self.lora_B, self.lora_A, alpha=self.scaling)
            return F.linear(x, weight, self.bias)
        tokens = x.reshape(-1, self.in_features)
        u = F.linear(self.lora_dropout(tokens), self.lora_A)
        out = self.fused_linear(tokens, u, matmul_dtype(x))
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', merged={self.merged}'


def inject_linear_adapters(encoder: nn.Module, targets: Union[str,
                                                              Sequence[str]],
                           factory: Callable[[nn.Linear], nn.Module],
                           adapter_name: str) -> Dict[str, nn.Module]:
    """Replace each Linear named by ``targets`` by ``factory(linear)``.

    Returns name -> new layer; refuses non-Linear or never-called matches.
    """
    named = [(n, m) for n, m in encoder.named_modules() if n]
    modules = dict(named)
    linear_names = [n for n, m in named if isinstance(m, nn.Linear)]
    inside_mha = {
        f'{n}.{child}'
        for n, m in named if isinstance(m, nn.MultiheadAttention)
        for child, _ in m.named_modules() if child
    }
    fix = 'fix the pattern'
    if type(encoder).__name__ == 'ImageEncoderViT':
        fix = (f"fix the pattern, e.g. targets=r'{DEFAULT_TARGETS}' (the "
               "fused qkv of every block) or r'blocks\\.\\d+\\.mlp\\."
               "lin1'")
    example = ', '.join(repr(n) for n in linear_names[:6])
    chosen: Dict[str, nn.Module] = {}
    matches = match_targets([n for n, _ in named],
                            targets,
                            adapter_name,
                            where=encoder_description(encoder),
                            fix=fix,
                            examples=linear_names)
    for name, match in matches.items():
        module = modules[name]
        hit = (f'{adapter_name}: target pattern "{match.re.pattern}" '
               f'matches {name!r}')
        if isinstance(module, LowRankLinear):
            raise ValueError(
                f'{hit}, which another adapter already wrapped '
                f'({type(module).__name__}); give each Linear layer at '
                f'most one LoRA/Conv-LoRA adapter.')
        if name in inside_mha:
            raise ValueError(
                f'{hit} inside an nn.MultiheadAttention, which never '
                'calls its forward, so the adapter would train nothing. '
                'Replace the attention as docs/compose_with_mmseg.md shows.')
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f'{hit}, a {type(module).__name__}, but only nn.Linear '
                f'layers can be adapted; make the pattern match Linear '
                f'layers only, e.g. {example}.')
        chosen[name] = module
    layers = {}
    for name, module in chosen.items():  # in module order
        parent_name, _, child = name.rpartition('.')
        parent = modules[parent_name] if parent_name else encoder
        layers[name] = factory(module)
        setattr(parent, child, layers[name])
    return layers


class LowRankAdapter(BaseSAMAdapter):
    """Replaces each Linear layer whose name ``re.fullmatch``-es a regex of
    ``targets`` by ``layer_type(linear, **layer_args)``."""

    applies_to = 'any'
    needs_encoder_grad = True
    replaces_modules = True
    layer_type: type = LowRankLinear

    def __init__(self,
                 targets: Union[str, Sequence[str]],
                 layer_args: dict,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_positive_int(
            layer_args.get('rank'), f'{type(self).__name__} rank')
        self.targets = targets
        self.layer_args = dict(layer_args)
        # a plain dict: the layers are the encoder's sub-modules, not ours
        self._layers: Dict[str, LowRankLinear] = {}

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        self._layers = inject_linear_adapters(
            encoder, self.targets,
            lambda lin: self.layer_type(lin, **self.layer_args),
            type(self).__name__)
        return list(self._layers.values())

    @property
    def layers(self) -> List[LowRankLinear]:
        """The adapted layers placed in the encoder, in module order."""
        return list(self._layers.values())

    @property
    def named_layers(self) -> Dict[str, LowRankLinear]:
        """Module name inside the encoder -> adapted layer."""
        return dict(self._layers)


@MODELS.register_module()
class LoRA(LowRankAdapter):
    """LoRA on the Linear layers named by ``targets`` (:class:`LoRALinear`).

    Args:
        rank (int): Rank r. Default 3.
        alpha (float): Scaling numerator (scaling = alpha / r). Default 32.
        dropout (float): Dropout on the low-rank input. Default 0.
        targets (str | list[str]): Module-name regex(es) (``re.fullmatch``).
            Default: the fused ``qkv`` of every block of SAM's ViT.
    """

    layer_type = LoRALinear

    def __init__(self,
                 rank: int = 3,
                 alpha: float = 32,
                 dropout: float = 0.0,
                 targets: Union[str, Sequence[str]] = DEFAULT_TARGETS,
                 init_cfg=None):
        super().__init__(
            targets,
            dict(rank=rank, alpha=alpha, dropout=dropout),
            init_cfg=init_cfg)

    def merge(self) -> None:
        """Merge every layer's update into its frozen weight (deployment)."""
        for layer in self.layers:
            layer.merge()

    def unmerge(self) -> None:
        for layer in self.layers:
            layer.unmerge()
