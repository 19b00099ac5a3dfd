"""Activation checkpointing that tells modules when they are recomputed
(Conv-LoRA keeps the routing record of the real forward pass)."""
import contextlib
import threading

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

_STATE = threading.local()


def is_recomputing() -> bool:
    """True while activation checkpointing recomputes a forward pass."""
    return getattr(_STATE, 'depth', 0) > 0


@contextlib.contextmanager
def recomputing():
    """Mark the enclosed code as a recomputation (nests)."""
    _STATE.depth = getattr(_STATE, 'depth', 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1


def checkpoint_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` under non-reentrant activation checkpointing, RNG state
    kept (Conv-LoRA's gate noise replays exactly), :func:`recomputing`
    around the recomputation."""
    return cp.checkpoint(
        block,
        x,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=lambda: (contextlib.nullcontext(), recomputing()))
