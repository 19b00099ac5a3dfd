"""Every use of mmengine's private API in this package, in one place.

mmengine 0.10 has no public way to do the few things below. Each is a
one-line accessor or a seam that hands a private step to a public method,
so that an mmengine release that changes them breaks here, visibly, and
nowhere else: ``tests/engine/test_mmengine_private.py`` checks every entry
against the supported version (:data:`SUPPORTED_MMENGINE`).

=================================  ==========================================
what                               why
=================================  ==========================================
:func:`randomness_cfg`             ``diff_rank_seed`` (exact resume under
                                   DDP, dataloaders built by our loops)
:func:`resume_request`,            resolve ``--resume`` to a complete
:func:`set_resume_checkpoint`      checkpoint before mmengine loads it
:func:`mean_losses`                validation/test losses of several sets
:class:`CheckpointHookSeam`        checkpoint saving order (crash safety)
:class:`ClipGradSeam`              global-norm clipping under FSDP
:func:`set_loss_scale_update`      ``AmpOptimWrapper`` on the CPU
=================================  ==========================================
"""
from typing import Optional, Tuple

from mmengine.hooks import CheckpointHook
from mmengine.runner.loops import _parse_losses

__all__ = [
    'SUPPORTED_MMENGINE', 'randomness_cfg', 'resume_request',
    'set_resume_checkpoint', 'mean_losses', 'CheckpointHookSeam',
    'ClipGradSeam', 'set_loss_scale_update'
]

#: mmengine versions whose private API this module was checked against.
SUPPORTED_MMENGINE = ('0.10.7', )


def randomness_cfg(runner) -> dict:
    """The runner's ``randomness`` settings (``seed``, ``diff_rank_seed``,
    ``deterministic``) as it applies them (``Runner._randomness_cfg``)."""
    return dict(runner._randomness_cfg)


def resume_request(runner) -> Tuple[bool, Optional[str]]:
    """``(resume, checkpoint)`` as the runner will act on them in
    ``load_or_resume``: ``Runner._resume`` and ``Runner._load_from``
    (``FlexibleRunner._resume`` may also be the checkpoint itself)."""
    if isinstance(runner._resume, str):
        return True, runner._resume
    return bool(runner._resume), runner._load_from


def set_resume_checkpoint(runner, path: str) -> None:
    """Make ``load_or_resume`` resume from ``path``. ``Runner`` calls it
    after ``before_run``; ``FlexibleRunner`` before, so there only
    ``tools/train.py`` (which resolves ``--resume`` itself) applies."""
    if isinstance(runner._resume, str):
        runner._resume = path
    else:
        runner._load_from = path


def mean_losses(losses: dict, stage: str) -> dict:
    """Average the loss history buffers of a validation/test loop and add
    ``<stage>_loss``, as mmengine's ``ValLoop``/``TestLoop`` report them
    (``mmengine.runner.loops._parse_losses``)."""
    return _parse_losses(losses, stage)


class CheckpointHookSeam(CheckpointHook):
    """mmengine's ``CheckpointHook`` whose per-step save (the private
    ``_save_checkpoint_with_step``, used for regular checkpoints and after a
    new best one) is the public :meth:`save_checkpoint_step`."""

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        self.save_checkpoint_step(runner, step, meta)

    def save_checkpoint_step(self, runner, step: int, meta: dict) -> None:
        """Save the checkpoint of ``step`` (epoch or iteration); override."""
        super()._save_checkpoint_with_step(runner, step, meta)


class ClipGradSeam:
    """Mixin for ``OptimWrapper`` classes: mmengine's gradient clipping
    (the private ``_clip_grad``, called by ``step``) is the public
    :meth:`clip_gradients`."""

    def _clip_grad(self) -> None:
        self.clip_gradients()

    def clip_gradients(self) -> None:
        """Clip the gradients as configured by ``clip_grad``; override."""
        super()._clip_grad()


def set_loss_scale_update(wrapper, value: Optional[float]) -> None:
    """What mmengine's ``AmpOptimWrapper.step`` passes to
    ``GradScaler.update`` (a fixed scale, or None for dynamic scaling);
    needed when its ``__init__`` (which refuses CPUs) is bypassed."""
    wrapper._scale_update_param = value
