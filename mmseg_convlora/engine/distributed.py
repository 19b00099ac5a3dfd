"""Data-parallel training through mmengine, also without GPUs (gloo)."""
import datetime
import logging
import os
import sys
from typing import Optional, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

__all__ = [
    'CPUSyncBatchNorm', 'needs_find_unused_parameters',
    'SAMDistributedDataParallel', 'init_dist_on_cpu', 'shutdown_distributed'
]


def init_dist_on_cpu(launcher: str, cfg) -> bool:
    """Start a gloo process group when launched by torchrun without GPUs
    (mmengine's ``init_dist`` selects a CUDA device first).

    Args:
        launcher (str): ``--launcher`` of the tool.
        cfg (Config): The run's config: ``env_cfg.dist_cfg`` (``nccl``
            becomes ``gloo``); ``FSDPStrategy`` gets ``device_id='cpu'``.

    Returns:
        bool: Whether a process group was started here.
    """
    torchrun = {'RANK', 'WORLD_SIZE'} <= set(os.environ)
    if launcher != 'pytorch' or torch.cuda.is_available() or not torchrun \
            or not dist.is_available() or dist.is_initialized():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}) or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        print_log(
            f'No GPU available: using the gloo backend instead of '
            f'{backend!r} for this CPU run.',
            logger='current',
            level=logging.WARNING)
    strategy = cfg.get('strategy')
    if isinstance(strategy, dict) and strategy.get('type') == 'FSDPStrategy':
        # mmengine passes the local rank as a CUDA device id
        wrapper = strategy.get('model_wrapper') or dict(
            type='MMFullyShardedDataParallel')
        wrapper.setdefault('device_id', 'cpu')
        strategy['model_wrapper'] = wrapper
    timeout = dist_cfg.get('timeout')
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
    dist.init_process_group(backend='gloo', **dist_cfg)
    return True


def shutdown_distributed() -> None:
    """End a distributed run (in a ``finally``): wait for the other ranks
    (unless an exception is on its way out), destroy the process group."""
    if not dist.is_available() or not dist.is_initialized():
        return
    if sys.exc_info()[0] is None:  # a failed rank may never meet the others
        dist.barrier()
    dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over the processes."""

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
    """Synchronised BatchNorm for CPU tensors (gloo): in training with more
    than one rank the per-channel sums are all-reduced (float64).

    Args:
        num_features, eps, momentum, affine, track_running_stats: As
            :class:`torch.nn.BatchNorm2d`.
        process_group (ProcessGroup, optional): Defaults to the world.
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

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        group = self.process_group or dist.group.WORLD
        if not (self.training and dist.is_available()
                and dist.is_initialized() and dist.get_world_size(group) > 1):
            return super().forward(input)
        self._check_input_dim(input)
        C = input.shape[1]
        dims = [0] + list(range(2, input.dim()))
        x = input.double()
        count = x.new_tensor([input.numel() / C])
        stats = _AllReduceSum.apply(
            torch.cat([x.sum(dims), (x * x).sum(dims), count]), group)
        n = stats[-1]
        mean = stats[:C] / n
        var = (stats[C:2 * C] / n - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) \
                    if self.momentum is None else self.momentum
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.lerp_(mean.to(self.running_mean), factor)
                self.running_var.lerp_(unbiased.to(self.running_var), factor)
        shape = [1, C] + [1] * (input.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        out = out.to(input.dtype)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @classmethod
    def convert(cls, module: nn.Module, process_group=None) -> nn.Module:
        """Replace every ``SyncBatchNorm`` of ``module`` (in place) by this
        class; returns ``module`` or, for a SyncBatchNorm, its replacement."""
        if isinstance(module, nn.SyncBatchNorm):
            new = cls(module.num_features, module.eps, module.momentum,
                      module.affine, module.track_running_stats, process_group)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias
            for key in ('running_mean', 'running_var', 'num_batches_tracked'):
                setattr(new, key, getattr(module, key))
            return new.train(module.training)
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child, process_group))
        return module


def needs_find_unused_parameters(module: nn.Module,
                                 device: Union[str, torch.device]) -> bool:
    """Whether a Conv-LoRA layer can leave a trainable expert without a
    gradient on ``device`` (grouped dispatch)."""
    from ..models.adapters.conv_lora import ConvLoRALinear
    return any(
        m.may_leave_experts_without_grad(device) for m in module.modules()
        if isinstance(m, ConvLoRALinear))


@MODEL_WRAPPERS.register_module()
class SAMDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` choosing what depends on model and
    device: on the CPU no ``device_ids`` and :class:`CPUSyncBatchNorm`.

    Args:
        module (nn.Module): The model, on its device.
        find_unused_parameters (bool | str): ``'auto'`` (default): True only
            for Conv-LoRA with grouped dispatch.
        device_ids (list[int], optional): Filled in by mmengine.
        **kwargs: Other ``DistributedDataParallel`` arguments.
    """

    def __init__(self,
                 module: nn.Module,
                 find_unused_parameters: Union[bool, str] = 'auto',
                 device_ids: Optional[list] = None,
                 **kwargs):
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        if device.type == 'cpu':
            device_ids = None
            n_bn = sum(
                isinstance(m, nn.SyncBatchNorm) for m in module.modules())
            module = CPUSyncBatchNorm.convert(module)
            if n_bn:
                print_log(
                    f'{n_bn} BatchNorm layers synchronised across processes '
                    '(CPUSyncBatchNorm).',
                    logger='current')
        if find_unused_parameters == 'auto':
            find_unused_parameters = needs_find_unused_parameters(
                module, device)
            print_log(
                f'find_unused_parameters={find_unused_parameters} (' +
                ('Conv-LoRA grouped dispatch leaves unselected experts '
                 'without gradient' if find_unused_parameters else
                 'every trainable parameter takes part in each step') + ')',
                logger='current')
        elif not isinstance(find_unused_parameters, bool):
            raise ValueError(
                "find_unused_parameters must be True, False or 'auto', got "
                f'{find_unused_parameters!r}.')
        kwargs.setdefault('broadcast_buffers', False)
        super().__init__(
            module=module,
            device_ids=device_ids,
            find_unused_parameters=find_unused_parameters,
            **kwargs)
