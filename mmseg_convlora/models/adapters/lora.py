"""LoRA (Hu et al. 2022) on the Linear layers of SAM's frozen ViT.

Besides :class:`LoRALinear` and the :class:`LoRA` adapter, this module holds
what LoRA and Conv-LoRA share: the low-rank wrapper base class
:class:`LowRankLinear` and :func:`inject_linear_adapters`, which finds the
target Linear layers by name and swaps them for their adapted versions.
"""
import math
from typing import Callable, Dict, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from ..utils.fused_lora_linear import (autocast_off, fused_lora_linear,
                                       matmul_dtype)
from .base_adapter import BaseSAMAdapter
from .targets import encoder_description, match_targets

DEFAULT_TARGETS = r'blocks\.\d+\.attn\.qkv'


def check_rank(rank, owner: str) -> None:
    """Refuse a rank that is not a positive integer (the one check, for the
    adapters' configs and the layers alike)."""
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        raise ValueError(f'{owner} rank must be a positive integer, got '
                         f'rank={rank!r}.')


class LowRankLinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` path ``B (.) A``.

    The wrapped layer's ``weight`` and ``bias`` are taken over as they are
    (same Parameter objects, still frozen), so the frozen weights keep their
    official SAM state-dict keys (``...attn.qkv.weight``) and a merged LoRA
    model exports in SAM's own layout. The low-rank factors follow HF peft:
    ``lora_A`` (r, in) kaiming-uniform (a = sqrt(5), like ``nn.Linear``),
    ``lora_B`` (out, r) zeros, so the wrapped layer starts as the identity
    change, and ``scaling = alpha / r``.

    Args:
        base (nn.Linear): The frozen layer to wrap.
        rank (int): Rank r (> 0).
        alpha (float): LoRA alpha; the update is scaled by ``alpha / rank``.
        dropout (float): Dropout probability on the input of the low-rank
            path (training only).
    """

    def __init__(self,
                 base: nn.Linear,
                 rank: int = 3,
                 alpha: float = 32,
                 dropout: float = 0.0):
        super().__init__()
        check_rank(rank, type(self).__name__)
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
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """A like ``nn.Linear``'s weight, B zeros (adapter starts at 0)."""
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, '
                f'bias={self.bias is not None}, rank={self.rank}, '
                f'scaling={self.scaling:g}')


class LoRALinear(LowRankLinear):
    """``y = W x + b + (alpha / r) * B A dropout(x)`` around a frozen Linear.

    In training the frozen product, the bias and the low-rank update are
    one GEMM (:func:`fused_lora_linear`). In eval the forward uses ``W +
    scaling * B @ A`` in a single ``F.linear`` (one extra (out, r) x (r, in)
    product per call, negligible against the token matmul) computed on the
    fly: the frozen ``weight`` is never written, so any number of
    train/eval switches leaves it bit-identical, and gradients still reach
    A and B if someone differentiates in eval mode.

    :meth:`merge` writes the update into ``weight`` in place for deployment
    (then the layer is exactly a plain Linear, no extra work at all);
    :meth:`unmerge` subtracts it again. A merge/unmerge round trip restores
    ``weight`` only up to float rounding.

    Args:
        base (nn.Linear): The frozen layer to wrap.
        rank (int): Rank r (> 0). Default 3.
        alpha (float): Scaling numerator. Default 32.
        dropout (float): Dropout on the low-rank path's input. Default 0.

    Shapes:
        input (..., in_features) -> output (..., out_features).
    """

    def __init__(self,
                 base: nn.Linear,
                 rank: int = 3,
                 alpha: float = 32,
                 dropout: float = 0.0):
        super().__init__(base, rank=rank, alpha=alpha, dropout=dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """``scaling * B @ A``, (out_features, in_features)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the low-rank update into the frozen weight (in place)."""
        if self.merged:
            return
        delta = self.delta_weight().to(torch.float32)
        self.weight.copy_((self.weight.float() + delta).to(self.weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` (exact up to float rounding)."""
        if not self.merged:
            return
        delta = self.delta_weight().to(torch.float32)
        self.weight.copy_((self.weight.float() - delta).to(self.weight.dtype))
        self.merged = False

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
        # Frozen product, bias and low-rank update in one GEMM, in the
        # dtype F.linear would use (autocast's, if on).
        tokens = x.reshape(-1, self.in_features)
        u = F.linear(self.lora_dropout(tokens), self.lora_A)
        dtype = matmul_dtype(x)
        with autocast_off(x.device):
            bias = None if self.bias is None else self.bias.to(dtype)
            out = fused_lora_linear(
                tokens.to(dtype), u.to(dtype), self.weight.to(dtype), bias,
                self.lora_B.to(dtype), self.scaling)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', merged={self.merged}'


def inject_linear_adapters(encoder: nn.Module, targets: Union[str,
                                                              Sequence[str]],
                           factory: Callable[[nn.Linear], nn.Module],
                           adapter_name: str) -> Dict[str, nn.Module]:
    """Replace the Linear layers of ``encoder`` whose names match.

    Args:
        encoder (nn.Module): SAM's ``ImageEncoderViT``, or the mmseg
            backbone inside :class:`PEFTBackbone` (modified in place).
        targets (str | Sequence[str]): Regular expression(s) matched with
            ``re.fullmatch`` against module names inside the encoder, e.g.
            ``r'blocks\\.\\d+\\.attn\\.qkv'``.
        factory (Callable): Builds the adapted layer from the frozen Linear.
        adapter_name (str): Used in error messages.

    Returns:
        dict[str, nn.Module]: Module name inside ``encoder`` -> the new
        layer, in module order.

    Raises:
        ValueError: A pattern that is not a valid regex or matches nothing,
            a match that is not an ``nn.Linear`` (including a layer that
            another adapter already wrapped), or a Linear inside an
            ``nn.MultiheadAttention``, whose ``forward`` is never called
            (its weight is used directly), so an adapter would train
            nothing.
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
    for name, pattern in match_targets([n for n, _ in named],
                                       targets,
                                       adapter_name,
                                       'module',
                                       encoder_description(encoder),
                                       fix,
                                       examples=linear_names):
        module = modules[name]
        if isinstance(module, LowRankLinear):
            raise ValueError(
                f'{adapter_name}: target pattern "{pattern}" matches '
                f'{name!r}, which another adapter already wrapped '
                f'({type(module).__name__}); give each Linear layer at '
                f'most one LoRA/Conv-LoRA adapter.')
        if name in inside_mha:
            raise ValueError(
                f'{adapter_name}: target pattern "{pattern}" matches '
                f'{name!r} inside an nn.MultiheadAttention, which never '
                'calls its forward (it passes the weight to F.multi_head_'
                'attention_forward), so the adapter would train nothing. '
                "Wrap the backbone in type='PEFTBackbone': it replaces "
                'nn.MultiheadAttention by LinearMultiheadAttention, whose '
                'q_proj, k_proj, v_proj and out_proj can be targeted.')
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f'{adapter_name}: target pattern "{pattern}" matches '
                f'{name!r}, a {type(module).__name__}, but only nn.Linear '
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
    """What LoRA and Conv-LoRA share: the Linear layers of the encoder whose
    names match ``targets`` are each replaced by
    ``layer_type(linear, **layer_args)``.

    The layers live inside the encoder; the adapter keeps them in a plain
    dict (not as sub-modules) so that their parameters have exactly one
    state-dict key each.

    Args:
        targets (str | list[str]): Module-name regex(es), matched with
            ``re.fullmatch`` inside the encoder.
        layer_args (dict): Keyword arguments of ``layer_type`` (``rank``
            included, checked here so a bad config fails when built).
        init_cfg (dict, optional): Unused (initialisation is fixed).
    """

    needs_encoder_grad = True
    replaces_modules = True
    applies_to_any_backbone = True
    layer_type: type = LowRankLinear

    def __init__(self,
                 targets: Union[str, Sequence[str]],
                 layer_args: dict,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_rank(layer_args.get('rank'), type(self).__name__)
        self.targets = targets
        self.layer_args = dict(layer_args)
        self._layers: Dict[str, LowRankLinear] = {}  # see class doc

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
    """LoRA (Hu et al., ICLR 2022) on SAM's image encoder.

    Wraps every Linear layer of the frozen encoder whose name matches
    ``targets`` (default: the fused ``qkv`` of every block, so q, k and v all
    adapt) in a :class:`LoRALinear`. Each adapted Linear(C_in, C_out) adds
    ``r (C_in + C_out)`` parameters (4rC for qkv).

    Args:
        rank (int): Rank r. Default 3.
        alpha (float): Scaling numerator (scaling = alpha / r). Default 32.
        dropout (float): Dropout on the low-rank input. Default 0.
        targets (str | list[str]): Module-name regex(es), matched with
            ``re.fullmatch`` inside the encoder.
        init_cfg (dict, optional): Unused (initialisation is fixed).
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
        """Undo :meth:`merge` on every layer."""
        for layer in self.layers:
            layer.unmerge()
