"""Tell modules whether they run for the first time or are being recomputed
by activation checkpointing.

:class:`SAMViT` checkpoints its blocks with ``torch.utils.checkpoint``
(non-reentrant). During backward the block's forward runs a second time to
rebuild the activations; modules that record something per forward pass
(Conv-LoRA's ``last_moe_loss`` and routing) must not overwrite the record of
the real forward pass with the recomputed one: the loss that was added to
the task loss is the first one, and a later reader (a logger, a test) must
see that one.
"""
import contextlib
import threading

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


def checkpoint_context_fn():
    """``context_fn`` for ``torch.utils.checkpoint.checkpoint``: nothing
    around the original forward, :func:`recomputing` around the
    recomputation."""
    return contextlib.nullcontext(), recomputing()
