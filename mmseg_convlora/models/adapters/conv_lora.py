"""Conv-LoRA (Zhong et al., ICLR 2024): LoRA with multi-scale conv experts."""
import contextlib
import functools
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmseg.registry import MODELS

from ..utils.fused_lora_linear import autocast_off, matmul_dtype
from ..utils.recompute import is_recomputing
from .base_adapter import check_positive_int
from .lora import DEFAULT_TARGETS, LowRankAdapter, LowRankLinear

DISPATCH_MODES = ('auto', 'grouped', 'dense', 'loop')


def cv_squared(values: torch.Tensor) -> torch.Tensor:
    """Unbiased ``var(v) / (mean(v)^2 + 1e-10)`` of (M, ) values (0 if M=1)."""
    values = values.float()
    if values.numel() <= 1:
        return values.new_zeros(())
    return values.var() / (values.mean()**2 + 1e-10)


def moe_balance_loss(importance: torch.Tensor,
                     load: torch.Tensor) -> torch.Tensor:
    """Load-balancing loss of one layer, ``0.01 (cv2(imp) + cv2(load))``."""
    return 0.01 * (cv_squared(importance) + cv_squared(load))


def _cached_unless_tracing(build):
    """``build`` cached, except while tracing (tensors must not outlive it)."""
    cached = functools.lru_cache(maxsize=None)(build)

    @functools.wraps(build)
    def get(*args):
        return build(*args) if torch.compiler.is_compiling() else cached(*args)

    return get


@_cached_unless_tracing
def _bicubic_matrix(size_in: int, size_out: int,
                    device: torch.device) -> torch.Tensor:
    """(size_out, size_in) matrix of PyTorch's 1-D bicubic resizing."""
    a = -0.75
    # source coordinates in float32, as PyTorch's kernel computes them
    scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    src = (torch.arange(size_out, dtype=torch.float32) + 0.5) * scale - 0.5
    start = src.floor()
    t = (src - start).double().unsqueeze(1)
    d = torch.cat([t + 1, t, 1 - t, 2 - t], dim=1)  # distance to each tap
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    weights = torch.where(d <= 1, near, far)
    cols = (start.long().unsqueeze(1) + torch.arange(-1, 3)).clamp(
        0, size_in - 1)
    rows = torch.arange(size_out).unsqueeze(1).expand_as(cols)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    matrix.index_put_((rows, cols), weights, accumulate=True)
    return matrix.float().to(device)


@_cached_unless_tracing
def _conv_taps(size_in: int, scale: int, device: torch.device) -> torch.Tensor:
    """Upsampling by ``scale``, then conv taps 0..2: (S, 3 s) matrix."""
    up = _bicubic_matrix(size_in, size_in * scale, device)
    pad = up.new_zeros(1, size_in)
    padded = torch.cat([pad, up, pad])
    return torch.cat([padded[d:d + up.shape[0]] for d in range(3)], dim=1)


def bicubic_resize(z: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bicubic ``F.interpolate`` of (n, c, h, w) maps as two matmuls."""
    h, w = z.shape[-2:]
    rows = _bicubic_matrix(h, size[0], z.device)
    cols = _bicubic_matrix(w, size[1], z.device)
    return rows @ z @ cols.t()


def upsampled_conv3x3(z: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor, scale: int) -> torch.Tensor:
    """``F.conv2d(bicubic_resize(z, (h s, w s)), weight, bias, padding=1)``
    as matrix products on the small maps: float32 z (n, c, h, w), weight
    (o, c, 3, 3), bias (o, ) -> (n, o, h s, w s)."""
    n, c, h, w = z.shape
    o = weight.shape[0]
    # channels mixed per tap (dy, dx): (n, o, (dy, h), (dx, w))
    taps = z.permute(0, 2, 3, 1) @ weight.transpose(0, 1).reshape(c, -1)
    taps = taps.view(n, h, w, o, 3, 3).permute(0, 3, 4, 1, 5,
                                               2).reshape(n, o, 3 * h, 3 * w)
    rows = _conv_taps(h, scale, z.device)  # (H, 3 h)
    cols = _conv_taps(w, scale, z.device)  # (W, 3 w)
    v = taps @ cols.t()  # (n, o, (dy, h), W)
    return rows @ v + bias.view(1, -1, 1, 1)


class ConvLoRALinear(LowRankLinear):
    """A frozen Linear with Conv-LoRA: ``y = W x + b + s B (z + E_e(z))``.

    ``z = A x`` as maps (N, r, h, w) is routed per sample by a noisy top-k
    gate to experts at scales 1..M (docs/methods.md). Takes (N, h, w, C_in)
    maps, or (N, P + h w, C_in) sequences after :meth:`set_token_grid`.

    Args:
        base (nn.Linear): The frozen layer.
        rank, alpha, num_experts, top_k, multiply_gate: See :class:`ConvLoRA`.
        noise_epsilon (float): Added to the softplus noise std. Default 0.01.
        dispatch (str): 'auto' (dense on CUDA, grouped elsewhere),
            'grouped', 'dense' or 'loop' (reference); same results.
    """

    def __init__(self,
                 base: nn.Linear,
                 rank: int = 3,
                 alpha: float = 32,
                 num_experts: int = 8,
                 top_k: int = 1,
                 multiply_gate: bool = False,
                 noise_epsilon: float = 0.01,
                 dispatch: str = 'auto'):
        super().__init__(base, rank=rank, alpha=alpha, dropout=0.0)
        _check_moe_args(num_experts, top_k, dispatch)
        self.num_experts = num_experts
        self.top_k = top_k
        self.multiply_gate = multiply_gate
        self.noise_epsilon = noise_epsilon
        self.dispatch = dispatch
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.w_gate = nn.Parameter(torch.zeros(rank, num_experts, **factory))
        self.w_noise = nn.Parameter(torch.zeros(rank, num_experts, **factory))
        self.experts = nn.ModuleList(
            nn.Conv2d(rank, rank, 3, padding=1, **factory)
            for _ in range(num_experts))
        for conv in self.experts:
            nn.init.zeros_(conv.bias)  # weight: PyTorch's default init
        self.scales = tuple(range(1, num_experts + 1))
        self.last_moe_loss: Optional[torch.Tensor] = None
        self.last_expert_ids: Optional[torch.Tensor] = None
        self.last_grid: Optional[Tuple[int, int]] = None
        self.token_grid: Optional[Tuple[int, int]] = None
        self.num_prefix_tokens = 0
        self._plain = False  # see plain_low_rank

    def set_token_grid(self,
                       grid: Optional[Tuple[int, int]],
                       num_prefix_tokens: int = 0) -> None:
        """Declare the (h, w) grid (None: forget it) and the number of
        tokens before it of the (N, L, C) sequences this layer gets."""
        self.token_grid = None if grid is None else tuple(map(int, grid))
        self.num_prefix_tokens = int(num_prefix_tokens)

    def __getstate__(self) -> dict:
        """The state without ``last_moe_loss`` (``deepcopy`` refuses it)."""
        state = self.__dict__.copy()
        state['last_moe_loss'] = None
        return state

    def dispatch_on(self, device: Union[str, torch.device]) -> str:
        """The dispatch mode this layer runs with on ``device``."""
        if self.dispatch != 'auto':
            return self.dispatch
        return 'dense' if torch.device(device).type == 'cuda' else 'grouped'

    def may_leave_experts_without_grad(
            self, device: Union[str, torch.device]) -> bool:
        """Whether a step on ``device`` can leave an expert without grad."""
        trainable = any(p.requires_grad for p in self.experts.parameters())
        return trainable and self.dispatch_on(device) != 'dense'

    def run_expert(self, index: int, z: torch.Tensor) -> torch.Tensor:
        """Expert ``index`` on float32 maps (n, r, h, w)."""
        conv = self.experts[index]
        scale = self.scales[index]
        h, w = z.shape[-2:]
        weight, bias = conv.weight.float(), conv.bias.float()
        if scale == 1:
            return F.gelu(F.conv2d(z, weight, bias, padding=1))
        y = F.gelu(upsampled_conv3x3(z, weight, bias, scale))
        return bicubic_resize(y, (h, w))

    def route(self, z: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Noisy top-k gating of float32 maps (N, r, h, w): ``top_idx`` and
        ``top_gates`` (N, k), ``gates`` and 0/1 ``mask`` (N, M), ``loss``
        (the unweighted load-balancing loss)."""
        M, k = self.num_experts, self.top_k
        p = z.mean(dim=(2, 3))
        clean = p @ self.w_gate.float()
        noisy = self.training
        logits = clean
        if noisy:
            std = F.softplus(p @ self.w_noise.float()) + self.noise_epsilon
            logits = clean + torch.randn_like(clean) * std
        top_logits, top_idx = logits.topk(min(k + 1, M), dim=1)
        top_k_logits, top_k_idx = top_logits[:, :k], top_idx[:, :k]
        top_k_gates = top_k_logits.softmax(dim=1)
        gates = torch.zeros_like(logits).scatter(1, top_k_idx, top_k_gates)
        # scatter (not one_hot, which checks its input) keeps GPUs sync-free
        mask = torch.zeros_like(logits).scatter(1, top_k_idx, 1.0)
        importance = gates.sum(0)
        if noisy and k < M:
            # Shazeer's smooth load: probability that expert m stays in the
            # top k of row n under a fresh draw of its own noise.
            threshold_if_in = top_logits[:, k:k + 1]
            threshold_if_out = top_logits[:, k - 1:k]
            prob_if_in = torch.special.ndtr((clean - threshold_if_in) / std)
            prob_if_out = torch.special.ndtr((clean - threshold_if_out) / std)
            load = torch.where(mask > 0, prob_if_in, prob_if_out).sum(0)
        else:
            load = mask.sum(0)
        return dict(
            top_idx=top_k_idx,
            top_gates=top_k_gates,
            gates=gates,
            mask=mask,
            loss=moe_balance_loss(importance, load))

    def _mix_loop(self, z: torch.Tensor, route: dict) -> torch.Tensor:
        """Reference: each sample through each of its experts, one by one."""
        outs = []
        top_idx = route['top_idx'].tolist()
        for n in range(z.shape[0]):
            acc = 0
            for j, e in enumerate(top_idx[n]):
                y = self.run_expert(e, z[n:n + 1])
                if self.multiply_gate:
                    y = y * route['top_gates'][n, j]
                acc = acc + y
            outs.append(acc)
        return torch.cat(outs, dim=0)

    def _mix_grouped(self, z: torch.Tensor, route: dict) -> torch.Tensor:
        """Each used expert once, on the samples sorted by expert."""
        N, k = route['top_idx'].shape
        flat_expert = route['top_idx'].reshape(-1)  # (N k, ): slot n k + j
        order = torch.argsort(flat_expert, stable=True)
        # The one host read per layer: the group sizes.
        counts = torch.bincount(
            flat_expert, minlength=self.num_experts).tolist()
        grouped = z.index_select(0, torch.div(order, k, rounding_mode='floor'))
        outs = [
            self.run_expert(e, part)
            for e, part in enumerate(grouped.split(counts)) if counts[e]
        ]
        y = torch.cat(outs, dim=0) if len(outs) > 1 else outs[0]
        if self.multiply_gate:
            y = y * route['top_gates'].reshape(-1)[order].view(-1, 1, 1, 1)
        # Back to slot order: a permutation, no zero-filled scatter.
        y = y.index_select(0, torch.argsort(order))
        return y if k == 1 else y.view(N, k, *y.shape[1:]).sum(1)

    def _mix_dense(self, z: torch.Tensor, route: dict) -> torch.Tensor:
        """Every expert on all samples, combined by the route mask."""
        combine = route['gates'] if self.multiply_gate else route['mask']

        def mix(z: torch.Tensor, combine: torch.Tensor) -> torch.Tensor:
            out = None
            for e in range(self.num_experts):
                y = self.run_expert(e, z) * combine[:, e].view(-1, 1, 1, 1)
                out = y if out is None else out + y
            return out

        if torch.is_grad_enabled():
            # Recompute the (up to M^2 times larger) expert maps in backward
            # instead of storing them.
            return cp.checkpoint(mix, z, combine, use_reentrant=False)
        return mix(z, combine)

    @contextlib.contextmanager
    def plain_low_rank(self):
        """Compute plain LoRA ``W x + b + s B A x`` within this context."""
        self._plain = True
        try:
            yield self
        finally:
            self._plain = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._plain:
            return F.linear(x, self.weight, self.bias) + self.scaling * \
                F.linear(F.linear(x, self.lora_A), self.lora_B)
        if x.dim() == 4:
            N, h, w, C = x.shape
            out = self._forward_tokens(x.reshape(N, h * w, C), (h, w), 0)
            return out.view(N, h, w, -1)
        grid, prefix = self._sequence_layout(x)
        return self._forward_tokens(x, grid, prefix)

    def _sequence_layout(self, x: torch.Tensor):
        """The grid and prefix-token count of a (N, L, C) input."""
        if x.dim() != 3:
            raise ValueError(
                'ConvLoRALinear needs token maps (N, h, w, C) or token '
                f'sequences (N, L, C); got shape {tuple(x.shape)}.')
        if self.token_grid is None:
            raise ValueError(
                'ConvLoRALinear got a token sequence of shape '
                f'{tuple(x.shape)} but does not know its h x w grid, which '
                'its convolutional experts need: call set_token_grid((h, '
                'w), num_prefix_tokens) before each forward (see '
                'docs/compose_with_mmseg.md), or use LoRA for this layer.')
        (h, w), prefix = self.token_grid, self.num_prefix_tokens
        if x.shape[1] != prefix + h * w:
            raise ValueError(
                f'ConvLoRALinear got {x.shape[1]} tokens, but its grid is '
                f'{h}x{w} with {prefix} prefix token(s) = {prefix + h * w} '
                'tokens: the grid set by set_token_grid does not describe '
                'this input.')
        return (h, w), prefix

    def _forward_tokens(self, x: torch.Tensor, grid: Tuple[int, int],
                        prefix: int) -> torch.Tensor:
        """(N, P + h w, C) -> (N, P + h w, C_out); no experts on prefix."""
        N, L, C = x.shape
        h, w = grid
        tokens = x.reshape(-1, C)
        z = F.linear(tokens, self.lora_A)  # (N L, r)
        dtype = matmul_dtype(x)
        mix_fn = getattr(self, f'_mix_{self.dispatch_on(z.device)}')
        with autocast_off(z.device):
            zf = z.float().view(N, L, self.rank)
            maps = zf[:, prefix:].reshape(N, h, w, self.rank)
            maps = maps.permute(0, 3, 1, 2).contiguous()
            route = self.route(maps)
            mix = mix_fn(maps, route).permute(0, 2, 3, 1)
            mix = F.pad(mix.reshape(N, h * w, self.rank), (0, 0, prefix, 0))
            out = self.fused_linear(tokens, (zf + mix).view(-1, self.rank),
                                    dtype)
        if not is_recomputing():
            # recomputed in backward (same RNG state, same routing): the
            # loss the segmentor added up is the first pass's
            self.last_moe_loss = route['loss']
            self.last_expert_ids = route['top_idx'].detach()
            self.last_grid = (h, w)
        return out.view(N, L, -1)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', num_experts={self.num_experts}, '
                f'top_k={self.top_k}, multiply_gate={self.multiply_gate}, '
                f'dispatch={self.dispatch!r}')


def _check_moe_args(num_experts: int, top_k: int, dispatch: str) -> None:
    check_positive_int(num_experts, 'Conv-LoRA num_experts')
    if not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
        raise ValueError(f'Conv-LoRA top_k must be in [1, num_experts='
                         f'{num_experts}], got {top_k!r}.')
    if dispatch not in DISPATCH_MODES:
        raise ValueError(f'Conv-LoRA dispatch must be one of '
                         f'{DISPATCH_MODES}, got {dispatch!r}.')


@MODELS.register_module()
class ConvLoRA(LowRankAdapter):
    """Conv-LoRA on the Linear layers named by ``targets``; adds ``loss_moe``.

    Args:
        rank, alpha, targets: As :class:`LoRA`'s.
        num_experts (int): M; expert i works at scale i + 1. Default 8.
        top_k (int): Experts per sample. Default 1.
        multiply_gate (bool): Scale expert outputs by the gate. Default False.
        loss_weight (float): Weight of ``loss_moe``. Default 1.0.
        noise_epsilon, dispatch: See :class:`ConvLoRALinear`.
    """

    layer_type = ConvLoRALinear

    def __init__(self,
                 rank: int = 3,
                 alpha: float = 32,
                 num_experts: int = 8,
                 top_k: int = 1,
                 multiply_gate: bool = False,
                 loss_weight: float = 1.0,
                 noise_epsilon: float = 0.01,
                 targets: Union[str, Sequence[str]] = DEFAULT_TARGETS,
                 dispatch: str = 'auto',
                 init_cfg=None):
        super().__init__(
            targets,
            dict(
                rank=rank,
                alpha=alpha,
                num_experts=num_experts,
                top_k=top_k,
                multiply_gate=multiply_gate,
                noise_epsilon=noise_epsilon,
                dispatch=dispatch),
            init_cfg=init_cfg)
        _check_moe_args(num_experts, top_k, dispatch)
        self.loss_weight = loss_weight

    def set_dispatch(self, dispatch: str) -> None:
        """Switch every layer's dispatch mode."""
        _check_moe_args(self.layer_args['num_experts'],
                        self.layer_args['top_k'], dispatch)
        self.layer_args['dispatch'] = dispatch
        for layer in self.layers:
            layer.dispatch = dispatch

    def aux_losses(self) -> Dict[str, torch.Tensor]:
        losses = [
            layer.last_moe_loss for layer in self.layers
            if layer.last_moe_loss is not None
        ]
        if not losses:
            return {}
        return {'loss_moe': self.loss_weight * torch.stack(losses).sum()}

    def last_routing(self) -> Dict[str, Dict[str, object]]:
        """Module name -> ``dict(expert_ids=(N, k), grid=(h, w))`` of the
        last forward pass."""
        return {
            name: dict(expert_ids=layer.last_expert_ids, grid=layer.last_grid)
            for name, layer in self._layers.items()
            if layer.last_expert_ids is not None
        }
