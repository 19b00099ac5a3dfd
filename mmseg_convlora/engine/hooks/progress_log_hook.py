"""A progress line (with ETA) when the logger has been silent too long."""
import time

from mmengine.hooks import Hook, LoggerHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ProgressLogHook(Hook):
    """Log mmengine's progress line (iteration, ETA, losses; not to
    ``scalars.json``) when the :class:`LoggerHook` has been silent too long.

    Args:
        max_silence (float): Seconds without a progress line after which
            one is printed. Defaults to 120.
    """

    priority = 'LOW'  # after IterTimerHook (ETA) and LoggerHook

    def __init__(self, max_silence: float = 120.0):
        self.max_silence = float(max_silence)
        self._last = time.monotonic()

    def _before_epoch(self, runner, mode: str = 'train') -> None:
        self._last = time.monotonic()

    def _after_iter(self,
                    runner,
                    batch_idx,
                    data_batch=None,
                    outputs=None,
                    mode: str = 'train') -> None:
        hook = next((h for h in runner.hooks if isinstance(h, LoggerHook)),
                    None)
        logged = hook and hook.every_n_inner_iters(batch_idx, hook.interval)
        if hook and mode == 'train' and not logged:
            loader = runner.train_dataloader
            logged = hook.end_of_epoch(
                loader, batch_idx) and (not hook.ignore_last
                                        or len(loader) <= hook.interval)
        if not logged and time.monotonic() - self._last >= self.max_silence:
            _, line = runner.log_processor.get_log_after_iter(
                runner, batch_idx, mode)
            runner.logger.info(line)
            logged = True
        if logged:
            self._last = time.monotonic()
