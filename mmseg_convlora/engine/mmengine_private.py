"""Every use of mmengine's private API in this package, in one place.

``tests/engine/test_mmengine_private.py`` checks each against the supported
mmengine version (:data:`SUPPORTED_MMENGINE`).
"""
from typing import Optional, Tuple

from mmengine.runner.loops import _parse_losses

__all__ = [
    'SUPPORTED_MMENGINE', 'randomness_cfg', 'resume_request',
    'set_resume_checkpoint', 'mean_losses', 'set_loss_scale_update'
]

#: mmengine versions whose private API this module was checked against.
SUPPORTED_MMENGINE = ('0.10.7', )


def randomness_cfg(runner) -> dict:
    """The runner's ``randomness`` settings (``Runner._randomness_cfg``)."""
    return dict(runner._randomness_cfg)


def resume_request(runner) -> Tuple[bool, Optional[str]]:
    """``(resume, checkpoint)`` as ``load_or_resume`` will act on them
    (``Runner._resume``, ``Runner._load_from``)."""
    if isinstance(runner._resume, str):  # FlexibleRunner
        return True, runner._resume
    return bool(runner._resume), runner._load_from


def set_resume_checkpoint(runner, path: str) -> None:
    """Make ``load_or_resume`` resume from ``path`` (called in
    ``before_run``, which ``Runner`` calls before loading)."""
    if isinstance(runner._resume, str):
        runner._resume = path
    else:
        runner._load_from = path


def mean_losses(losses: dict, stage: str) -> dict:
    """Loss averages of a validation/test loop as mmengine's loops report
    them (``mmengine.runner.loops._parse_losses``)."""
    return _parse_losses(losses, stage)


def set_loss_scale_update(wrapper, value: Optional[float]) -> None:
    """What ``AmpOptimWrapper.step`` passes to ``GradScaler.update``
    (``_scale_update_param``), for a wrapper that bypasses its
    ``__init__``."""
    wrapper._scale_update_param = value
