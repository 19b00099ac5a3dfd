"""Data-parallel training of the PEFT SAM models through mmengine.

What DDP needs from these models, decided once here instead of per config:

* **Unused parameters.** Conv-LoRA's ``'grouped'`` dispatch runs only the
  experts some window was routed to, so the other experts get no gradient
  and DDP's reducer would wait for them forever (``find_unused_parameters``
  must be True). ``'dense'`` dispatch (the ``'auto'`` choice on CUDA) runs
  every expert and gives unselected ones an exact zero gradient, so the
  cheaper ``find_unused_parameters=False`` is right. The frozen SAM encoder
  (and CAD's encoder, run under ``no_grad``) has ``requires_grad=False`` and
  is not registered with DDP at all. :class:`SAMDistributedDataParallel`
  looks at the model and picks the flag (``find_unused_parameters='auto'``).
* **BatchNorm.** CAD has BatchNorm layers; with per-GPU batches of 1 their
  statistics must be synchronised. The wrapper converts every BatchNorm to
  SyncBN when it wraps (not distributed: nothing happens, and an explicit
  ``norm_cfg=dict(type='SyncBN')`` is reverted to BN by mmengine). On GPUs
  it is PyTorch's ``SyncBatchNorm``; PyTorch refuses that on CPU, so CPU
  (gloo) runs get :class:`CPUSyncBatchNorm`, which all-reduces the
  statistics itself.
* **CPU launch.** mmengine's ``init_dist('pytorch')`` calls
  ``torch.cuda.set_device`` and fails on a machine without GPUs;
  :func:`init_dist_on_cpu` starts a gloo process group first (used by
  ``tools/train.py`` and ``tools/test.py``).
"""
import datetime
import logging
import os
from typing import Optional, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
# the root registry: Runner.wrap_model looks the wrapper type up there
from mmengine.registry import MODEL_WRAPPERS
from mmseg.registry import HOOKS

__all__ = [
    'CPUSyncBatchNorm', 'convert_sync_batchnorm',
    'needs_find_unused_parameters', 'SAMDistributedDataParallel',
    'init_dist_on_cpu', 'sam_vit_block_wrap_policy', 'FSDPClipGradHook',
    'shutdown_distributed'
]


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

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None):
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


def convert_sync_batchnorm(
        module: nn.Module,
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
        new = sync_cls(module.num_features, module.eps, module.momentum,
                       module.affine, module.track_running_stats,
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


def needs_find_unused_parameters(module: nn.Module,
                                 device: Union[str, torch.device]) -> bool:
    """Whether some trainable parameter can be left out of a backward pass.

    True when a Conv-LoRA layer dispatches ``'grouped'`` (or ``'loop'``), or
    ``'auto'`` on a device other than CUDA: experts no window was routed to
    then take no part in the step.
    """
    from ..models.adapters.conv_lora import ConvLoRALinear
    device = torch.device(device)
    for m in module.modules():
        if not isinstance(m, ConvLoRALinear):
            continue
        if not any(p.requires_grad for p in m.experts.parameters()):
            continue
        dispatch = m.dispatch
        if dispatch == 'auto':
            dispatch = 'dense' if device.type == 'cuda' else 'grouped'
        if dispatch != 'dense':
            return True
    return False


@MODEL_WRAPPERS.register_module()
class SAMDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that configures itself for the model.

    The default ``model_wrapper_cfg`` of every config in this repository
    (``configs/_base_/default_runtime.py``). Used by mmengine only when the
    run is distributed.

    Args:
        module (nn.Module): The model (already on its device).
        find_unused_parameters (bool | str): ``'auto'`` (default): True only
            if :func:`needs_find_unused_parameters` (Conv-LoRA with grouped
            dispatch); an explicit bool is used as given.
        sync_bn (bool): Convert BatchNorm layers to synchronised BatchNorm
            (PyTorch's on GPUs, :class:`CPUSyncBatchNorm` on CPU).
            Default True.
        broadcast_buffers (bool): DDP's option; False as in mmengine's
            default wrapper (BN statistics are synchronised by SyncBN, the
            frozen SAM buffers never change).
        device_ids (list[int], optional): Filled in by mmengine with the
            local rank; dropped for CPU models (DDP refuses it there).
        **kwargs: Other :class:`torch.nn.parallel.DistributedDataParallel`
            arguments.
    """

    def __init__(self,
                 module: nn.Module,
                 find_unused_parameters: Union[bool, str] = 'auto',
                 sync_bn: bool = True,
                 broadcast_buffers: bool = False,
                 device_ids: Optional[list] = None,
                 **kwargs):
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        if sync_bn:
            sync_cls = CPUSyncBatchNorm if device.type == 'cpu' \
                else nn.SyncBatchNorm
            n_bn = sum(
                isinstance(m, nn.modules.batchnorm._BatchNorm)
                for m in module.modules())
            module = convert_sync_batchnorm(module, sync_cls)
            if n_bn:
                print_log(
                    f'SAMDistributedDataParallel: {n_bn} BatchNorm layers '
                    f'synchronised across processes ({sync_cls.__name__}).',
                    logger='current')
        if find_unused_parameters == 'auto':
            find_unused_parameters = needs_find_unused_parameters(
                module, device)
            print_log(
                'SAMDistributedDataParallel: find_unused_parameters='
                f'{find_unused_parameters} ('
                + ('Conv-LoRA grouped dispatch leaves unselected experts '
                   'without gradient' if find_unused_parameters else
                   'every trainable parameter takes part in each step')
                + ')', logger='current')
        elif not isinstance(find_unused_parameters, bool):
            raise ValueError(
                "find_unused_parameters must be True, False or 'auto', got "
                f'{find_unused_parameters!r}.')
        if device.type == 'cpu':
            device_ids = None
        super().__init__(
            module=module,
            device_ids=device_ids,
            broadcast_buffers=broadcast_buffers,
            find_unused_parameters=find_unused_parameters,
            **kwargs)


def init_dist_on_cpu(launcher: str, cfg) -> bool:
    """Start a gloo process group when launched by torchrun without GPUs.

    mmengine's ``init_dist('pytorch')`` selects a CUDA device first, which
    fails on a CPU-only machine. Called before building the Runner, which
    then finds the process group initialised and uses it.

    Args:
        launcher (str): ``--launcher`` of the tool.
        cfg (Config): The run's config (``env_cfg.dist_cfg`` is used; an
            ``nccl`` backend becomes ``gloo``, with a warning). An
            ``FSDPStrategy`` gets ``model_wrapper.device_id='cpu'``.

    Returns:
        bool: Whether a process group was started here.
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if not dist.is_available() or dist.is_initialized():
        return False
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}) or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        print_log(
            f'No GPU available: using the gloo backend instead of '
            f'{backend!r} for this CPU run.', logger='current',
            level=logging.WARNING)
        backend = 'gloo'
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
    dist.init_process_group(backend=backend, **dist_cfg)
    return True


# ------------------------------------------------------------------ FSDP
def sam_vit_block_wrap_policy(module: nn.Module, recurse: bool,
                              nonwrapped_numel: int = 0, **kwargs) -> bool:
    """FSDP ``auto_wrap_policy``: one FSDP unit per SAM ViT block.

    Registered in mmengine's ``FUNCTIONS`` so a config can name it:
    ``auto_wrap_policy=dict(type='sam_vit_block_wrap_policy')``. Everything
    else (patch embedding, neck, prompt encoder, mask decoder) stays in the
    root unit.
    """
    if recurse:
        return True
    from segment_anything.modeling.image_encoder import Block
    return isinstance(module, Block)


def _register_fsdp_policy() -> None:
    from mmengine.registry import FUNCTIONS
    if 'sam_vit_block_wrap_policy' not in FUNCTIONS.module_dict:
        FUNCTIONS.register_module(
            name='sam_vit_block_wrap_policy',
            module=sam_vit_block_wrap_policy)


_register_fsdp_policy()


@HOOKS.register_module()
class FSDPClipGradHook(Hook):
    """Clip gradients by the global norm under FSDP.

    mmengine's ``OptimWrapper`` clips with ``torch.nn.utils.clip_grad_norm_``
    over the parameters it holds; under FSDP those are each process's
    shards, so every process would compute (and clip by) the norm of its
    own shard. This hook configures the package's optimizer wrapper
    (:class:`GlobalNormClip`) to clip with the FSDP model's
    ``clip_grad_norm_``, which all-reduces the norm first. Nothing happens
    when the model is not FSDP or ``clip_grad`` is not a norm clip.
    """

    def before_train(self, runner) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel

        from .optimizers.global_norm_clip import GlobalNormClip
        model = runner.model
        if not isinstance(model, FullyShardedDataParallel):
            return
        wrapper = runner.optim_wrapper
        if getattr(wrapper, 'clip_func', None) is not \
                torch.nn.utils.clip_grad_norm_:
            return
        if not isinstance(wrapper, GlobalNormClip):
            raise TypeError(
                'FSDPClipGradHook needs the optimizer wrapper of '
                'mmseg_convlora (optim_wrapper.type="OptimWrapper" or '
                f'"AmpOptimWrapper"), got {type(wrapper).__name__}.')
        wrapper.clip_by_global_norm_of(model)
        runner.logger.info('FSDPClipGradHook: gradients are clipped by '
                           'the global norm over all shards.')


def shutdown_distributed() -> None:
    """Tear the process group down before the interpreter exits.

    Left to interpreter shutdown, gloo's worker threads can still be alive
    when their process group is destroyed, which aborts the process
    ("terminate called without an active exception") after a run that
    otherwise finished.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
