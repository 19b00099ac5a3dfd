from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from ..mmengine_private import set_loss_scale_update


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` on the CPU (``GradScaler('cpu')``),
    which mmengine's refuses; ``tools/train.py --amp`` without a GPU.

    Args:
        loss_scale (str | float | dict): ``'dynamic'``, a fixed scale, or
            ``GradScaler`` keyword arguments. Defaults to 'dynamic'.
        dtype (str | torch.dtype, optional): Autocast dtype. Defaults to
            None (``bfloat16``).
        **kwargs: See :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, loss_scale='dynamic', dtype=None, **kwargs):
        # AmpOptimWrapper.__init__ refuses CPUs: set up what it would
        OptimWrapper.__init__(self, **kwargs)
        set_loss_scale_update(self, None)
        if loss_scale == 'dynamic':
            loss_scale = {}
        elif isinstance(loss_scale, float):
            set_loss_scale_update(self, loss_scale)
            loss_scale = dict(init_scale=loss_scale)
        elif not isinstance(loss_scale, dict):
            raise TypeError('loss_scale must be a float, a dict or '
                            f"'dynamic', got {loss_scale!r}.")
        self.loss_scaler = torch.amp.GradScaler('cpu', **loss_scale)
        if isinstance(dtype, str):
            if dtype not in ('float16', 'bfloat16'):
                raise ValueError("dtype must be 'float16' or 'bfloat16', "
                                 f'got {dtype!r}.')
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype or torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        if param is not None and param.device.type != 'cpu':
            raise ValueError(f'CPUAmpOptimWrapper: the model is on '
                             f'{param.device}, not the CPU; use '
                             "optim_wrapper.type='AmpOptimWrapper'.")
        with OptimWrapper.optim_context(self, model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
