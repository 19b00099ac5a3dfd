"""Stop (or skip the step) on a NaN/inf loss or gradient, and never keep a
diverged state."""
from typing import List

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS

from ..optimizers.non_finite_guard import NonFiniteGuard

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """Training stopped by :class:`NonFiniteLossHook`."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Keep NaN/inf out of the weights and the checkpoints.

    It switches on the optimizer wrapper's guard (:class:`NonFiniteGuard`,
    part of the package's ``OptimWrapper`` and ``AmpOptimWrapper``) and
    decides, after each iteration, what the guard found:

    * **non-finite loss or gradient**: the optimizer step was not applied
      and the gradients were dropped (with gradient accumulation, of the
      whole accumulation window). ``action='raise'`` (default): training
      stops with :class:`NonFiniteLossError` naming the iteration, the
      epoch, the non-finite loss terms and the images of the batch; the
      weights in memory and in the last checkpoint are sound.
      ``action='skip'``: a warning names them and training goes on (the
      learning-rate schedule moves on); after ``max_consecutive_skips``
      skipped iterations in a row it stops as in ``'raise'`` (diverging, not
      hiccuping).
    * **diverged weights** (non-finite, or their norm grew more than
      ``max_weight_growth`` times in one optimizer step, e.g. a learning
      rate far too high): training stops in both modes, before any
      checkpoint of that state is written, naming the last good checkpoint.
      A run that diverged therefore never ends as a success.

    It also refuses to save a checkpoint whose trainable weights are not
    finite, whatever produced them. Under DDP the processes agree (see
    :class:`NonFiniteGuard`), so they stop or skip together.

    Args:
        action (str): ``'raise'`` or ``'skip'``.
        max_consecutive_skips (int): See above. Default 10.
        max_weight_growth (float): See above. Default 10.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 action: str = 'raise',
                 max_consecutive_skips: int = 10,
                 max_weight_growth: float = 10.0):
        if action not in ('raise', 'skip'):
            raise ValueError(
                f"NonFiniteLossHook action must be 'raise' or 'skip', got "
                f'{action!r}.')
        if max_consecutive_skips < 1:
            raise ValueError('max_consecutive_skips must be >= 1, got '
                             f'{max_consecutive_skips}.')
        if not max_weight_growth > 1:
            raise ValueError('max_weight_growth must be > 1, got '
                             f'{max_weight_growth!r}.')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.max_weight_growth = max_weight_growth
        self._wrappers: List[NonFiniteGuard] = []
        self._consecutive = 0
        self._img_paths: List[str] = []
        self.skipped_iters: List[int] = []

    # ------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        wrappers = runner.optim_wrapper.values() if isinstance(
            runner.optim_wrapper,
            OptimWrapperDict) else [runner.optim_wrapper]
        self._wrappers = []
        for wrapper in wrappers:
            if not isinstance(wrapper, NonFiniteGuard):
                raise TypeError(
                    f'NonFiniteLossHook needs the optimizer wrapper of '
                    f'mmseg_convlora (optim_wrapper.type="OptimWrapper" or '
                    f'"AmpOptimWrapper" in the mmseg scope), got '
                    f'{type(wrapper).__module__}.{type(wrapper).__name__}. '
                    'Use one of those types, or remove NonFiniteLossHook '
                    'from custom_hooks.')
            wrapper.guard_non_finite(self.max_weight_growth)
            self._wrappers.append(wrapper)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        paths = []
        samples = data_batch.get('data_samples', []) if isinstance(
            data_batch, dict) else []
        for sample in samples or []:
            path = sample.metainfo.get('img_path') if hasattr(
                sample, 'metainfo') else None
            if path:
                paths.append(str(path))
        self._img_paths = paths

    # ------------------------------------------------------------ check
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        events = [w.event for w in self._wrappers if w.event]
        if not events:
            self._consecutive = 0
            return
        event = next((e for e in events if e['kind'] == 'weights'), events[0])
        it, epoch = runner.iter + 1, runner.epoch + 1
        images = ''
        if self._img_paths:
            shown = self._img_paths[:8]
            images = (f' Images of this batch: {shown}'
                      f'{" ..." if len(self._img_paths) > 8 else ""}.')
        last = runner.message_hub.get_info('last_ckpt')
        if event['kind'] == 'weights':
            self._stop(
                runner,
                (f'Training diverged at iteration {it} (epoch {epoch}): the '
                 f'norm of the trainable weights went from '
                 f'{event["before"]:.4g} to {event["after"]:.4g} in one '
                 f'optimizer step (limit: {event["growth"]:g}x, '
                 'max_weight_growth) although the loss was finite'
                 f'{self._values(outputs)}. Training stopped before a '
                 'checkpoint of this state was written' +
                 (f'; the last good checkpoint is {last}' if last else '') +
                 '.' + images + ' Lower the learning rate or clip the '
                 'gradients (optim_wrapper.clip_grad).'))
        self._consecutive += 1
        if event['kind'] == 'loss':
            terms = self._bad_terms(outputs)
            what = (f'Non-finite loss at iteration {it} (epoch {epoch}): '
                    f'{", ".join(terms) or "loss"}'
                    f'{self._where(event)}{self._values(outputs, terms)}.')
        else:
            what = (f'Non-finite gradient at iteration {it} (epoch '
                    f'{epoch}): gradient norm {event["norm"]} with a finite '
                    f'loss{self._values(outputs)}.')
        if self.action == 'skip' and \
                self._consecutive <= self.max_consecutive_skips:
            self.skipped_iters.append(it)
            runner.logger.warning(
                what + ' The optimizer step of this iteration is skipped '
                'and its gradients dropped.' + images)
            return
        why = (f' {self._consecutive} iterations in a row were non-finite.'
               if self.action == 'skip' else '')
        self._stop(
            runner,
            (what + why + ' Training stopped before the optimizer step, so '
             'the weights were not updated with it' +
             (f' (last checkpoint: {last})' if last else '') + '.' + images +
             ' Common causes: a learning rate too high, float16 overflow '
             '(try --amp-dtype bfloat16, or no --amp), a corrupt image or '
             'mask. To skip such steps instead, use `tools/train.py '
             "--nonfinite skip` (NonFiniteLossHook action='skip')."))

    @staticmethod
    def _bad_terms(outputs) -> List[str]:
        if not isinstance(outputs, dict):
            return []
        bad = [
            k for k, v in outputs.items()
            if 'loss' in k and isinstance(v, torch.Tensor)
            and not torch.isfinite(v.detach()).all()
        ]
        # name the terms, not the total, when a term is to blame
        return [k for k in bad if k != 'loss'] or bad

    @staticmethod
    def _values(outputs, names=None) -> str:
        if not isinstance(outputs, dict):
            return ''
        names = names or [k for k in outputs if 'loss' in k]
        shown = [
            f'{k}={outputs[k].detach().float().mean().item():.4g}'
            for k in names if isinstance(outputs.get(k), torch.Tensor)
        ]
        return f'; values here: {", ".join(shown)}' if shown else ''

    @staticmethod
    def _where(event) -> str:
        if not (dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return ''
        return (f' on {event["ranks"]} of {dist.get_world_size()} processes '
                f'(this is rank {dist.get_rank()})')

    @staticmethod
    def _stop(runner, msg: str) -> None:
        runner.logger.error(msg)
        raise NonFiniteLossError(msg)

    # ------------------------------------------------------------ saving
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        bad = [
            n for n, p in model.named_parameters()
            if p.requires_grad and not torch.isfinite(p.detach()).all()
        ]
        if bad:
            self._stop(
                runner,
                (f'Refusing to save a checkpoint at iteration {runner.iter}: '
                 f'{len(bad)} trainable weights are not finite (e.g. '
                 f'{bad[:3]}); the previous checkpoints are kept.'))

    def after_train(self, runner) -> None:
        if self.skipped_iters:
            runner.logger.warning(
                f'NonFiniteLossHook skipped {len(self.skipped_iters)} '
                f'optimizer steps (iterations {self.skipped_iters[:20]}'
                f'{" ..." if len(self.skipped_iters) > 20 else ""}).')
