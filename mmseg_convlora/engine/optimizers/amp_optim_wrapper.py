"""mmengine's ``AmpOptimWrapper``, usable on the CPU too.

mmengine's wrapper refuses to be built without a GPU/NPU/MLU/MUSA device, so
``tools/train.py --amp`` (and mmseg's own ``--amp``) could not run on a
CPU. This subclass is registered under the same name in mmseg's
``OPTIM_WRAPPERS`` (the scope the configs use), so configs and tools need no
change: with an accelerator it *is* mmengine's wrapper (same code path);
without one it autocasts on the CPU (``bfloat16`` by default, ``float16``
also works) and scales the loss with ``torch.amp.GradScaler('cpu')``
(dynamic by default; ``tools/train.py`` sets a fixed scale of 1 for
bfloat16, which has float32's range).
"""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.optim import AmpOptimWrapper as _MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from ..mmengine_private import set_loss_scale_update
from .global_norm_clip import GlobalNormClip
from .non_finite_guard import NonFiniteGuard


def _accelerator_available() -> bool:
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


@OPTIM_WRAPPERS.register_module(name='AmpOptimWrapper')
class AmpOptimWrapper(NonFiniteGuard, GlobalNormClip,
                      _MMEngineAmpOptimWrapper):
    """Automatic mixed precision with loss scaling, on accelerators (exactly
    mmengine's ``AmpOptimWrapper``) and on the CPU, with the extensions of
    the package's ``OptimWrapper`` (the non-finite guard leaves gradients to
    the loss scaler, which skips steps with inf/NaN gradients).

    Args:
        loss_scale (str | float | dict): ``'dynamic'``, a fixed scale, or
            ``GradScaler`` keyword arguments.
        dtype (str | torch.dtype, optional): Autocast dtype; on the CPU
            None means ``bfloat16``.
        use_fsdp (bool): Accelerators only, as in mmengine.
        **kwargs: See :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None,
                 use_fsdp: bool = False,
                 **kwargs):
        self.checks_gradients = False
        if _accelerator_available():
            self._cpu = False
            super().__init__(
                loss_scale=loss_scale,
                dtype=dtype,
                use_fsdp=use_fsdp,
                **kwargs)
            return
        self._cpu = True
        # mmengine's __init__ refuses CPUs: set up what its step() reads
        OptimWrapper.__init__(self, **kwargs)
        set_loss_scale_update(self, None)
        if loss_scale == 'dynamic':
            self.loss_scaler = torch.amp.GradScaler('cpu')
        elif isinstance(loss_scale, float):
            set_loss_scale_update(self, loss_scale)
            self.loss_scaler = torch.amp.GradScaler(
                'cpu', init_scale=loss_scale)
        elif isinstance(loss_scale, dict):
            self.loss_scaler = torch.amp.GradScaler('cpu', **loss_scale)
        else:
            raise TypeError('loss_scale must be of type float, dict, or '
                            f'"dynamic", but got {loss_scale}')
        if isinstance(dtype, str):
            if dtype not in ('float16', 'bfloat16'):
                raise ValueError(f'dtype should be float16 or bfloat16, got '
                                 f'{dtype!r}')
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype if dtype is not None else torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        if not self._cpu:
            with super().optim_context(model):
                yield
            return
        with OptimWrapper.optim_context(self, model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
