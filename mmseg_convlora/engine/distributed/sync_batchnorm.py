"""Synchronised BatchNorm for CPU (gloo) runs, and the conversion of a
model's BatchNorm layers to a synchronised class."""
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over the processes (backward: the same sum of the
    gradients, i.e. the gradient of the sum of all ranks' losses)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronised BatchNorm for CPU tensors (gloo), as a plain module.

    PyTorch's ``SyncBatchNorm`` refuses CPU tensors, and DDP refuses any
    ``SyncBatchNorm`` instance in a CPU model, so this is a separate class.
    In training, under an initialised process group with more than one rank,
    the per-channel sum, sum of squares and count are summed over the ranks
    by a differentiable all-reduce: the forward uses the statistics of the
    union of the ranks' batches and the backward is that of BatchNorm over
    that union, as with PyTorch's SyncBN.
    Otherwise (eval, one process) it is ordinary BatchNorm. Statistics are
    accumulated in float64 (a CPU path: precision over speed).

    Args:
        num_features, eps, momentum, affine, track_running_stats: As
            :class:`torch.nn.BatchNorm2d`.
        process_group (ProcessGroup, optional): Default: the world.
    """

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: Optional[float] = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True,
                 process_group=None):
        super().__init__(num_features, eps, momentum, affine,
                         track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f'expected at least 2D input (got {input.dim()}D input)')

    def _needs_sync(self) -> bool:
        if not self.training:
            return False
        if not (dist.is_available() and dist.is_initialized()):
            return False
        group = self.process_group or dist.group.WORLD
        return dist.get_world_size(group) > 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._needs_sync():
            return super().forward(input)
        self._check_input_dim(input)
        C = input.shape[1]
        dims = [0] + list(range(2, input.dim()))
        x = input.double()
        count = x.new_tensor([input.numel() / C])
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        group = self.process_group or dist.group.WORLD
        stats = _AllReduceSum.apply(stats, group)
        n = stats[-1]
        mean = stats[:C] / n
        var = (stats[C:2 * C] / n - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                if self.momentum is None:  # cumulative moving average
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - factor).add_(
                    mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(
                    unbiased.to(self.running_var.dtype), alpha=factor)
        shape = [1, C] + [1] * (input.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        out = out.to(input.dtype)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(module: nn.Module,
                           sync_cls: type = CPUSyncBatchNorm,
                           process_group=None) -> nn.Module:
    """Replace every BatchNorm (incl. SyncBN of another class) by
    ``sync_cls``, keeping the parameter objects and the statistics.

    Returns:
        nn.Module: ``module`` (modified in place) or its replacement when
        ``module`` itself is a BatchNorm.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            type(module) is not sync_cls:
        new = sync_cls(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            process_group=process_group)
        if module.affine:
            with torch.no_grad():
                new.weight = module.weight
                new.bias = module.bias
        new.running_mean = module.running_mean
        new.running_var = module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        if hasattr(module, 'qconfig'):
            new.qconfig = module.qconfig
        return new
    for name, child in module.named_children():
        new_child = convert_sync_batchnorm(child, sync_cls, process_group)
        if new_child is not child:
            module.add_module(name, new_child)
    return module
