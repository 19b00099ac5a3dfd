import math
from typing import List

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from torch.nn.parallel import DistributedDataParallel

from .trainable_checkpoint_hook import unwrap


class NonFiniteLossError(FloatingPointError):
    """Training stopped by :class:`NonFiniteLossHook`."""


def _count(flag: bool, reduce: bool) -> int:
    """On how many processes ``flag`` holds (all-reduced if ``reduce``)."""
    count = torch.tensor([float(flag)])
    if reduce:
        all_reduce(count)
    return int(count.item())


def _head(items: list, n: int) -> str:
    return f'{items[:n]}' + (' ...' if len(items) > n else '')


def _total_norm(tensors: List[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all ``tensors`` together."""
    if hasattr(torch.nn.utils, 'get_total_norm'):  # torch >= 2.6: fused
        return torch.nn.utils.get_total_norm(tensors)
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


class FiniteGradientCheck:
    """Optimizer step pre-hook that drops a step with a NaN/inf gradient
    norm: all gradients become None, so weights and state stay untouched.

    Args:
        check (bool): Check the gradients (False: a loss scaler does).
        reduce (bool): Agree over processes whose gradients may differ.
    """

    def __init__(self, check: bool = True, reduce: bool = False):
        self.check, self.reduce = check, reduce
        self.stepped, self.dropped = False, None

    def __call__(self, optimizer, args, kwargs) -> None:
        self.stepped = True
        params = [p for g in optimizer.param_groups for p in g['params']]
        params = [p for p in params if p.grad is not None]
        if not self.check or not params:
            return
        norm = _total_norm([p.grad for p in params])
        if _count(not torch.isfinite(norm).item(), self.reduce):
            self.dropped, self.stepped = float(norm), False
            for p in params:
                p.grad = None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Keep NaN/inf and diverged weights out of the model and checkpoints
    (see docs/faults.md).

    Args:
        action (str): ``'raise'`` or ``'skip'``. Defaults to 'raise'.
        max_consecutive_skips (int): Defaults to 10.
        max_weight_growth (float): Defaults to 10.
    """

    priority = 'HIGH'  # after RuntimeInfoHook has logged the losses

    def __init__(self,
                 action: str = 'raise',
                 max_consecutive_skips: int = 10,
                 max_weight_growth: float = 10.0):
        if action not in ('raise', 'skip'):
            raise ValueError("NonFiniteLossHook action must be 'raise' or "
                             f"'skip', got {action!r}.")
        if max_consecutive_skips < 1 or not max_weight_growth > 1:
            raise ValueError(
                'NonFiniteLossHook needs max_consecutive_skips >= 1 and '
                f'max_weight_growth > 1, got {max_consecutive_skips} and '
                f'{max_weight_growth!r}.')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.max_weight_growth = max_weight_growth
        self.skipped_iters, self._bad_terms, self._img_paths = [], [], []
        self._consecutive = 0
        self._check = self._handle = self._norm = self._last_good = None

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        # DDP averages the gradients: every process sees the same
        self._check = FiniteGradientCheck(
            check=not hasattr(wrapper, 'loss_scaler'),
            reduce=get_world_size() > 1
            and not isinstance(runner.model, DistributedDataParallel))
        self._handle = wrapper.optimizer.register_step_pre_hook(self._check)
        self._norm = self._weights(runner)[0]
        self._last_good = runner.message_hub.get_info('last_ckpt')

    def after_train(self, runner) -> None:
        self._handle.remove()
        if self.skipped_iters:
            runner.logger.warning(
                f'NonFiniteLossHook skipped {len(self.skipped_iters)} '
                f'optimizer steps (iterations {_head(self.skipped_iters, 20)}'
                ').')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        batch = data_batch if isinstance(data_batch, dict) else {}
        samples = batch.get('data_samples') or []
        self._img_paths = [str(s.img_path) for s in samples if 'img_path' in s]

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        # the losses RuntimeInfoHook has logged: no host synchronisation
        hub, check = runner.message_hub, self._check
        terms = [k for k in outputs or {} if 'loss' in k]
        losses = {k: hub.get_scalar(f'train/{k}').current() for k in terms}
        nonfinite = [k for k in terms if not math.isfinite(losses[k])]
        self._bad_terms += [k for k in nonfinite if k not in self._bad_terms]
        if not runner.optim_wrapper.should_update():
            return  # within an accumulation window: decide at its end
        skipped, check.stepped = not check.stepped, False
        bad_terms, self._bad_terms = self._bad_terms, []
        if not skipped:
            self._consecutive = 0
            return
        # rare: which processes had a non-finite loss
        world = get_world_size()
        bad = _count(bool(bad_terms), world > 1)
        if not bad and not check.check:
            return  # a loss scaler finding its scale: normal with AMP
        it, epoch = runner.iter + 1, runner.epoch + 1
        values = ', '.join(f'{k}={v:.4g}' for k, v in losses.items())
        if bad:
            named = [t for t in bad_terms if t != 'loss'] or bad_terms
            where = '' if world == 1 else (
                f' on {bad} of {world} processes (this is rank {get_rank()})')
            what = (f'Non-finite loss at iteration {it} (epoch {epoch}): '
                    f'{", ".join(named) or "on another process"}{where}; '
                    f'values here: {values}.')
        else:
            what = (f'Non-finite gradient at iteration {it} (epoch {epoch}): '
                    f'gradient norm {check.dropped} with a finite loss; '
                    f'values here: {values}.')
        images = f' Images of this batch: {_head(self._img_paths, 8)}.' \
            if self._img_paths else ''
        self._consecutive += 1
        if self.action == 'skip' and \
                self._consecutive <= self.max_consecutive_skips:
            self.skipped_iters.append(it)
            runner.logger.warning(
                f'{what} The optimizer step of this iteration is skipped and '
                f'its gradients dropped.{images}')
            return
        why = (f' {self._consecutive} iterations in a row were non-finite.'
               if self.action == 'skip' else '')
        last = f' (last checkpoint: {self._last_good})' \
            if self._last_good else ''
        self._stop(
            runner, f'{what}{why} Stopped before the optimizer step: the '
            f'weights were not updated with it{last}.{images} Lower the '
            'learning rate, try --amp-dtype bfloat16 (or no --amp), check the '
            'images and masks, or skip such steps with `tools/train.py '
            "--nonfinite skip` (NonFiniteLossHook action='skip').")

    @staticmethod
    def _stop(runner, msg: str) -> None:
        runner.logger.error(msg)
        raise NonFiniteLossError(msg)

    @staticmethod
    def _weights(runner):
        """(norm of the trainable weights, names of non-finite ones)."""
        params = [(n, p.detach())
                  for n, p in unwrap(runner.model).named_parameters()
                  if p.requires_grad]
        if not params:
            return 0.0, []
        bad = [n for n, p in params if not torch.isfinite(p).all()]
        return float(_total_norm([p for _, p in params])), bad

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Runner saves on rank 0 only: a refusal there ends every process
        norm, bad = self._weights(runner)
        grown = self._norm is not None and not norm <= \
            self.max_weight_growth * max(self._norm, 1.0)
        if bad or grown:
            it = checkpoint.get('meta', {}).get('iter', runner.iter)
            detail = (f'{len(bad)} trainable weights are not finite (e.g. '
                      f'{bad[:3]})' if bad else
                      f'the norm of the trainable weights grew from '
                      f'{self._norm:.4g} to {norm:.4g} since the last '
                      f'checkpoint (limit: {self.max_weight_growth:g}x, '
                      'max_weight_growth)')
            last = f'; the last good checkpoint is {self._last_good}' \
                if self._last_good else ''
            self._stop(
                runner, f'Training diverged at iteration {it}: {detail}. '
                'Refusing to save a checkpoint of this state, so the '
                f'previous checkpoints are kept{last}. Lower the learning '
                'rate or clip the gradients (optim_wrapper.clip_grad).')
        self._norm = norm
        hub = getattr(runner, 'message_hub', None)
        self._last_good = hub.get_info('last_ckpt') if hub else None
