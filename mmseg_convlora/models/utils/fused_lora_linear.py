"""``x W^T + b + s u B^T`` as one matrix product (docs/speed_and_memory.md).
"""
import contextlib
from typing import Optional

import torch
import torch.nn.functional as F

# Inner widths that are not a multiple of this run the backward GEMM about
# 40% slower on CPU (MKL); the padding columns are zeros in both factors.
_ALIGN = 16


def _padded_width(width: int) -> int:
    return -(-width // _ALIGN) * _ALIGN


def _joint_weight(weight: torch.Tensor, bias: Optional[torch.Tensor],
                  lora_B: torch.Tensor, scaling: float,
                  width: int) -> torch.Tensor:
    """``[W, s B, b, 0]``: (out_features, width)."""
    c, r = weight.shape[1], lora_B.shape[1]
    joint = weight.new_empty(weight.shape[0], width)
    joint[:, :c] = weight
    torch.mul(lora_B, scaling, out=joint[:, c:c + r])
    joint[:, c + r:] = 0
    if bias is not None:
        joint[:, c + r] = bias
    return joint


class _FusedLoRALinear(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, u, weight, bias, lora_B, scaling):
        c, r = x.shape[1], u.shape[1]
        # The bias rides in the product as a column of ones: addmm would
        # first copy it into every row of the output, one more full pass.
        width = _padded_width(c + r + 1)
        joint_input = x.new_empty(x.shape[0], width)
        joint_input[:, :c] = x
        joint_input[:, c:c + r] = u
        joint_input[:, c + r] = 1
        joint_input[:, c + r + 1:] = 0
        out = joint_input @ _joint_weight(weight, bias, lora_B, scaling,
                                          width).t()
        ctx.scaling, ctx.width = scaling, width
        # x is needed only for the frozen weight's own gradient.
        ctx.save_for_backward(x if weight.requires_grad else None, u, weight,
                              lora_B)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, u, weight, lora_B = ctx.saved_tensors
        need_x, need_u, need_w, need_b, need_lora_b = ctx.needs_input_grad[:5]
        c, r = weight.shape[1], lora_B.shape[1]
        s = ctx.scaling
        grad_x = grad_u = grad_w = grad_b = grad_lora_b = None
        if need_x:
            joint = _joint_weight(weight, None, lora_B, s, ctx.width)
            joint_grad = grad @ joint
            grad_x = joint_grad[:, :c]
            grad_u = joint_grad[:, c:c + r] if need_u else None
        elif need_u:
            grad_u = grad @ (lora_B * s)
        if need_lora_b:
            # (u^T grad)^T: an (r, T) x (T, out) product runs several times
            # faster than grad^T u.
            grad_lora_b = (u.t() @ grad).t() * s
        if need_w:
            grad_w = grad.t() @ x
        if need_b:
            grad_b = grad.sum(0)
        return grad_x, grad_u, grad_w, grad_b, grad_lora_b, None


def fused_lora_linear(x: torch.Tensor, u: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor], lora_B: torch.Tensor,
                      scaling: float) -> torch.Tensor:
    """``x W^T + b + scaling * u B^T`` in one GEMM, (T, out_features), of
    x (T, in_features), low-rank activations u (T, r), weight (out, in),
    bias (out, ) or None and lora_B (out, r), all of one dtype. Without
    autograd ``addmm`` adds the rank-r term (no concatenated copy of x)."""
    if torch.is_grad_enabled() and any(
            t is not None and t.requires_grad
            for t in (x, u, weight, bias, lora_B)):
        return _FusedLoRALinear.apply(x, u, weight, bias, lora_B, scaling)
    return torch.addmm(F.linear(x, weight, bias), u, lora_B.t(), alpha=scaling)


def autocast_off(device: torch.device):
    """Disable autocast on ``device`` (a no-op context for device types
    autocast does not know)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


def matmul_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype ``F.linear(x, ...)`` computes in: autocast's, if on."""
    device = x.device.type
    try:
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
    except RuntimeError:  # a device type autocast does not know
        pass
    return x.dtype
