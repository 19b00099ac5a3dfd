"""Every use of mmengine's private API in this package, in one place.

``tests/engine/test_mmengine_private.py`` checks each against the supported
mmengine version (:data:`SUPPORTED_MMENGINE`).
"""
from typing import Optional, Tuple

from mmengine.runner.loops import _parse_losses

#: mmengine versions whose private API this module was checked against.
SUPPORTED_MMENGINE = ('0.10.7', )
#: loss averages of a val/test loop as mmengine's loops report them
mean_losses = _parse_losses


def randomness_cfg(runner) -> dict:
    """The runner's ``randomness`` settings (``Runner._randomness_cfg``)."""
    return dict(runner._randomness_cfg)


def resume_request(runner) -> Tuple[bool, Optional[str]]:
    """``(resume, checkpoint)`` as ``load_or_resume`` will act on them."""
    if isinstance(runner._resume, str):  # FlexibleRunner
        return True, runner._resume
    return bool(runner._resume), runner._load_from


def set_resume_checkpoint(runner, path: str) -> None:
    """Make ``load_or_resume`` (after ``before_run``) resume from ``path``."""
    if isinstance(runner._resume, str):
        runner._resume = path
    else:
        runner._load_from = path


def save_checkpoint_at(hook, runner, step: int, meta: dict) -> None:
    """Save a ``CheckpointHook``'s regular checkpoint of ``step``, as it does
    itself after a new best."""
    hook._save_checkpoint_with_step(runner, step, meta)


def set_loss_scale_update(wrapper, value: Optional[float]) -> None:
    """What ``AmpOptimWrapper.step`` passes to ``GradScaler.update``, for a
    wrapper that bypasses its ``__init__``."""
    wrapper._scale_update_param = value
