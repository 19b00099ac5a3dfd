"""Gradient clipping by the norm over all processes' shards (FSDP)."""
from typing import Optional

import torch
import torch.nn as nn

from ..mmengine_private import ClipGradSeam

__all__ = ['GlobalNormClip']


class GlobalNormClip(ClipGradSeam):
    """Mixin for ``OptimWrapper`` classes: clip by the global norm of a
    sharded model.

    mmengine clips with ``torch.nn.utils.clip_grad_norm_`` over the
    parameters the wrapper holds; under FSDP those are each process's
    shards, so every process would clip by the norm of its own shard. After
    :meth:`clip_by_global_norm_of` (called by :class:`FSDPClipGradHook`)
    norm clipping calls the FSDP model's ``clip_grad_norm_``, which
    all-reduces the norm first. Value clipping, or no model given: as
    mmengine.
    """

    _global_norm_model: Optional[nn.Module] = None

    def clip_by_global_norm_of(self, model: nn.Module) -> None:
        """Clip by ``model.clip_grad_norm_`` (an FSDP model) from now on."""
        self._global_norm_model = model

    def clip_gradients(self) -> None:
        model = self._global_norm_model
        if model is None or self.clip_func is not \
                torch.nn.utils.clip_grad_norm_:
            return super().clip_gradients()
        kwargs = self.clip_grad_kwargs
        norm = model.clip_grad_norm_(kwargs['max_norm'],
                                     kwargs.get('norm_type', 2.0))
        self.message_hub.update_scalar(f'train/{self.grad_name}', float(norm))
