"""Stop (or skip the step) on a NaN/inf loss before it reaches the weights."""
from typing import Dict, List

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NonFiniteLossHook` in ``action='raise'``."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Check every loss term of every training step for NaN/inf.

    The check runs between the forward pass and the backward pass (it wraps
    the model's ``parse_losses``), so a non-finite loss never reaches the
    optimizer:

    * ``action='raise'`` (default): training stops with
      :class:`NonFiniteLossError` naming the iteration, the epoch, the
      non-finite terms and the images of the batch. No update was applied,
      so the weights in memory and in the last checkpoint are sound.
    * ``action='skip'``: the backward pass still runs (DDP needs it), but the
      optimizer step of that iteration is skipped and its gradients are
      dropped (with gradient accumulation, the whole accumulation window);
      the learning-rate schedule moves on. A warning names the iteration and
      terms. After ``max_consecutive_skips`` skipped iterations in a row
      training stops as in ``'raise'`` (it is diverging, not hiccuping).

    Under DDP the ranks agree (one all-reduce of a few flags per iteration):
    a NaN on any rank stops or skips on all of them, so no rank hangs in a
    collective and the replicas stay identical.

    Args:
        action (str): ``'raise'`` or ``'skip'``.
        max_consecutive_skips (int): See above. Default 10.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise', max_consecutive_skips: int = 10):
        if action not in ('raise', 'skip'):
            raise ValueError(
                f"NonFiniteLossHook action must be 'raise' or 'skip', got "
                f'{action!r}.')
        if max_consecutive_skips < 1:
            raise ValueError('max_consecutive_skips must be >= 1, got '
                             f'{max_consecutive_skips}.')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self._runner = None
        self._skip_pending = False
        self._consecutive = 0
        self._img_paths: List[str] = []
        self.skipped_iters: List[int] = []

    # ------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        self._runner = runner
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not getattr(model.parse_losses, '_nonfinite_checked', False):
            original = model.parse_losses

            def parse_losses(losses):
                loss, log_vars = original(losses)
                self._check(log_vars)
                return loss, log_vars

            parse_losses._nonfinite_checked = True
            model.parse_losses = parse_losses
        if self.action == 'skip':
            wrappers = runner.optim_wrapper.values() if isinstance(
                runner.optim_wrapper, OptimWrapperDict) else [
                    runner.optim_wrapper]
            for wrapper in wrappers:
                self._guard_step(wrapper)

    def _guard_step(self, wrapper) -> None:
        if getattr(wrapper.step, '_nonfinite_guarded', False):
            return
        original = wrapper.step

        def step(**kwargs):
            if self._skip_pending:
                self._skip_pending = False
                wrapper.zero_grad()
                return None
            return original(**kwargs)

        step._nonfinite_guarded = True
        wrapper.step = step

    def before_train_iter(self, runner, batch_idx: int,
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
    def _check(self, log_vars: Dict[str, torch.Tensor]) -> None:
        names = [k for k, v in log_vars.items()
                 if 'loss' in k and isinstance(v, torch.Tensor)]
        if not names:
            return
        flags = torch.stack([
            (~torch.isfinite(log_vars[k].detach())).any().float()
            for k in names
        ])
        if dist.is_available() and dist.is_initialized() and \
                dist.get_world_size() > 1:
            dist.all_reduce(flags)  # number of ranks where each term is bad
        counts = flags.tolist()  # the one host read per iteration
        bad = [n for n, c in zip(names, counts) if c > 0]
        if not bad:
            self._consecutive = 0
            return
        # name the terms, not the total, when a term is to blame
        terms = [n for n in bad if n != 'loss'] or bad
        local = ', '.join(
            f'{n}={log_vars[n].detach().float().mean().item()}'
            for n in terms)
        runner = self._runner
        it = runner.iter + 1 if runner is not None else '?'
        epoch = runner.epoch + 1 if runner is not None else '?'
        where = ''
        if dist.is_available() and dist.is_initialized() and \
                dist.get_world_size() > 1:
            ranks = max(int(counts[names.index(n)]) for n in terms)
            where = (f' on {ranks} of {dist.get_world_size()} processes '
                     f'(this is rank {dist.get_rank()})')
        head = (f'Non-finite loss at iteration {it} (epoch {epoch}): '
                f'{", ".join(terms)}{where}; values here: {local}.')
        images = ''
        if self._img_paths:
            shown = self._img_paths[:8]
            images = (f' Images of this batch: {shown}'
                      f'{" ..." if len(self._img_paths) > 8 else ""}.')
        self._consecutive += 1
        if self.action == 'skip' and \
                self._consecutive <= self.max_consecutive_skips:
            self._skip_pending = True
            self.skipped_iters.append(it)
            if runner is not None:
                runner.logger.warning(
                    head + ' The optimizer step of this iteration is '
                    'skipped and its gradients dropped.' + images)
            return
        last = runner.message_hub.get_info('last_ckpt') if runner is not \
            None else None
        why = (f' {self._consecutive} iterations in a row were non-finite.'
               if self.action == 'skip' else '')
        msg = (head + why + ' Training stopped before the optimizer step, so '
               'the weights were not updated with it'
               + (f' (last checkpoint: {last})' if last else '') + '.'
               + images + ' Common causes: a learning rate too high, float16 '
               'overflow (try --amp-dtype bfloat16, or no --amp), a corrupt '
               'image or mask. To skip such steps instead, use '
               '`tools/train.py --nonfinite skip` (NonFiniteLossHook '
               "action='skip').")
        if runner is not None:
            runner.logger.error(msg)
        raise NonFiniteLossError(msg)

    def after_train(self, runner) -> None:
        if self.skipped_iters:
            runner.logger.warning(
                f'NonFiniteLossHook skipped {len(self.skipped_iters)} '
                f'optimizer steps (iterations {self.skipped_iters[:20]}'
                f'{" ..." if len(self.skipped_iters) > 20 else ""}).')

