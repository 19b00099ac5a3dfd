"""Optimizer updates that never bring NaN/inf or a blow-up into the
weights."""
from typing import Dict, List, Optional

import torch
import torch.distributed as dist

__all__ = ['NonFiniteGuard']


def _ranks_with(flag: bool) -> int:
    """On how many processes ``flag`` holds (one all-reduce under DDP)."""
    count = torch.tensor([float(flag)])
    if dist.is_available() and dist.is_initialized() and \
            dist.get_world_size() > 1:
        if dist.get_backend() == 'nccl':
            count = count.cuda()
        dist.all_reduce(count)
    return int(count.item())


def _norm(tensors: List[torch.Tensor]) -> torch.Tensor:
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(
        torch.stack(
            [torch.linalg.vector_norm(t.detach().float()) for t in tensors]))


class NonFiniteGuard:
    """Mixin for ``OptimWrapper`` classes: updates that would make the
    weights non-finite, or blow them up, are not applied (or are reported).

    Off until :meth:`guard_non_finite` is called (by
    :class:`NonFiniteLossHook`); off, the wrapper is exactly mmengine's.
    On, each iteration:

    * **loss**: a NaN/inf total loss (on any process) drops the gradients
      of the whole accumulation window: its optimizer step is skipped;
    * **gradients** (before each optimizer step; not with AMP, whose loss
      scaler already skips steps with inf/NaN gradients): a non-finite
      gradient norm skips the step;
    * **weights** (after each optimizer step): non-finite trainable weights,
      or a norm of all trainable weights that grew more than
      ``max_weight_growth`` times in this one step (measured from at least
      1), mark the state as diverged. The step is applied; the hook stops
      training before any checkpoint of it is written.

    What happened is left in :attr:`event` (None, or a dict with ``kind``
    ``'loss'``, ``'gradient'`` or ``'weights'`` and the values), reset at
    each :meth:`update_params`, for the hook to report. Under DDP/FSDP the
    processes agree (one all-reduce of a flag per check), so they skip or
    stop together.
    """

    guard_enabled = False
    max_weight_growth = 10.0
    #: whether :meth:`step` checks the gradients itself (False with AMP)
    checks_gradients = True
    event: Optional[Dict[str, object]] = None
    _drop_window = False

    def guard_non_finite(self, max_weight_growth: float = 10.0) -> None:
        """Switch the guard on (see the class docstring)."""
        if not max_weight_growth > 1:
            raise ValueError('max_weight_growth must be > 1, got '
                             f'{max_weight_growth!r}.')
        self.guard_enabled = True
        self.max_weight_growth = float(max_weight_growth)
        self.event = None
        self._drop_window = False

    def _trainable(self) -> List[torch.Tensor]:
        return [
            p for group in self.optimizer.param_groups for p in group['params']
            if p.requires_grad
        ]

    def update_params(self,
                      loss: torch.Tensor,
                      step_kwargs=None,
                      zero_kwargs=None) -> None:
        if not self.guard_enabled:
            return super().update_params(loss, step_kwargs, zero_kwargs)
        self.event = None
        ranks = _ranks_with(not bool(torch.isfinite(loss.detach()).all()))
        if ranks:
            self.event = dict(kind='loss', ranks=ranks)
            self._drop_window = True
        # the backward still runs: DDP expects it on every process
        self.backward(self.scale_loss(loss))
        if self.should_update():
            if self._drop_window:
                self._drop_window = False
            else:
                self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def step(self, **kwargs) -> None:
        if not self.guard_enabled:
            return super().step(**kwargs)
        params = self._trainable()
        if self.checks_gradients:
            grad_norm = _norm([p.grad for p in params if p.grad is not None])
            if _ranks_with(not bool(torch.isfinite(grad_norm))):
                self.event = dict(kind='gradient', norm=float(grad_norm))
                return None
        before = float(_norm(params))
        super().step(**kwargs)
        after = float(_norm(params))
        limit = self.max_weight_growth * max(before, 1.0)
        diverged = not (after == after and after <= limit)  # NaN-safe
        if _ranks_with(diverged):
            self.event = dict(
                kind='weights',
                before=before,
                after=after,
                growth=self.max_weight_growth)
        return None
