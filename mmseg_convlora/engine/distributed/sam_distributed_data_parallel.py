"""The DDP wrapper of every config: finds unused parameters only when the
model can leave some without a gradient, and synchronises BatchNorm."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
# the root registry: Runner.wrap_model looks the wrapper type up there
from mmengine.registry import MODEL_WRAPPERS

from .sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm


def needs_find_unused_parameters(module: nn.Module,
                                 device: Union[str, torch.device]) -> bool:
    """Whether some trainable parameter can be left out of a backward pass.

    True when a Conv-LoRA layer can leave a trainable expert without a
    gradient on ``device`` (its dispatch rule:
    :meth:`ConvLoRALinear.may_leave_experts_without_grad`).
    """
    from ...models.adapters.conv_lora import ConvLoRALinear
    return any(
        m.may_leave_experts_without_grad(device) for m in module.modules()
        if isinstance(m, ConvLoRALinear))


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
                f'{find_unused_parameters} (' +
                ('Conv-LoRA grouped dispatch leaves unselected experts '
                 'without gradient' if find_unused_parameters else
                 'every trainable parameter takes part in each step') + ')',
                logger='current')
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
