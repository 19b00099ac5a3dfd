"""Make the OpenMMLab stack usable on what pip can install today.

Imported first by :mod:`mmseg_convlora`, before anything imports mmseg.

Two gaps are closed here, each only when it actually exists:

1. **mmcv-lite.** PyPI ships mmcv only as source that does not compile against
   current torch, while ``mmcv-lite`` has no compiled ops, yet ``mmseg``
   imports ``mmcv.ops.point_sample`` and ``mmcv.ops.sigmoid_focal_loss`` at
   module level. The top-level module :mod:`mmseg_convlora_mmcv_ops` (also
   activated at interpreter start by the ``.pth`` file that ``pip install``
   writes) serves pure-PyTorch stand-ins for exactly those names when
   ``mmcv._ext`` is missing; here it is installed once more for source
   checkouts used without installing. Users with full mmcv keep their
   compiled ops untouched.

2. **torch >= 2.6 ``weights_only`` loading.** mmengine 0.10.7 calls
   ``torch.load`` without ``weights_only``; since torch 2.6 that means
   ``weights_only=True`` and mmengine's own checkpoints (message hub history
   buffers, numpy scalars in ``meta``) are refused, which breaks ``--resume``.
   Rather than switching the safety off, the few types an mmengine checkpoint
   contains are allow-listed with :func:`torch.serialization.add_safe_globals`.
"""
import importlib

import torch

from mmseg_convlora_mmcv_ops import (has_compiled_mmcv_ops, install,
                                     point_sample, sigmoid_focal_loss)

__all__ = [
    'install_mmcv_ops_fallback', 'allow_mmengine_checkpoints', 'point_sample',
    'sigmoid_focal_loss', 'MMCV_FULL_AVAILABLE'
]

MMCV_FULL_AVAILABLE = has_compiled_mmcv_ops()


def install_mmcv_ops_fallback() -> bool:
    """Serve the pure-PyTorch ``mmcv.ops`` when compiled ops are missing.

    Returns:
        bool: True if ``import mmcv.ops`` gives the stand-ins, False if full
        mmcv is available and is left alone.
    """
    install()
    return not has_compiled_mmcv_ops()


def _mmengine_checkpoint_globals() -> list:
    """Types that mmengine 0.10.x writes into its checkpoints."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    safe = [HistoryBuffer, np.ndarray, np.dtype]
    # numpy's reconstruct helpers moved from ``np.core`` to ``np._core`` in
    # 2.0; pickles name whichever the writer had.
    for mod_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for attr in ('_reconstruct', 'scalar'):
            if hasattr(mod, attr):
                safe.append((getattr(mod, attr), f'{mod_name}.{attr}'))
    # Concrete dtype classes (numpy >= 1.25) appear when dtypes are pickled.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            obj = getattr(dtypes, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                safe.append(obj)
    return safe


_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the built-in statistics.

    mmengine pickles the statistics methods it always re-registers on load
    (``min``, ``max``, ``current``, ``mean``) as ``getattr(HistoryBuffer,
    name)``; ``getattr`` is not (and should not be) a safe global, so such
    checkpoints cannot be loaded with ``weights_only=True``. Only methods a
    user registered are kept.
    """
    state = {
        k: v
        for k, v in self.__dict__.items() if k != 'statistics_methods'
    }
    custom = {
        k: v
        for k, v in self._statistics_methods.items()
        if k not in _DEFAULT_STATISTICS
    }
    if custom:
        state['statistics_methods'] = custom
    return state


def allow_mmengine_checkpoints() -> None:
    """Make mmengine checkpoints loadable with ``weights_only=True``.

    Allow-lists the types an mmengine checkpoint contains and stops
    ``HistoryBuffer`` from pickling ``getattr`` calls.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4 has no weights_only default
        return
    add_safe_globals(_mmengine_checkpoint_globals())


install_mmcv_ops_fallback()
allow_mmengine_checkpoints()
