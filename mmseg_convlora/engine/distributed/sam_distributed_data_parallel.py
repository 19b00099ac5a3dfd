from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .cpu_sync_batchnorm import CPUSyncBatchNorm


def needs_find_unused_parameters(module: nn.Module,
                                 device: Union[str, torch.device]) -> bool:
    """Whether a Conv-LoRA layer can leave a trainable expert without a
    gradient on ``device`` (grouped dispatch)."""
    from ...models.adapters.conv_lora import ConvLoRALinear
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
