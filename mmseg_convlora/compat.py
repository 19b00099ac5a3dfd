"""Make the OpenMMLab stack usable on what pip can install today.

Imported first by :mod:`mmseg_convlora`, before anything imports mmseg.

Two gaps are closed here, each only when it actually exists:

1. **mmcv-lite.** PyPI ships mmcv only as source that does not compile against
   current torch, while ``mmcv-lite`` has no compiled ops. ``mmseg`` imports
   ``mmcv.ops.point_sample`` and ``mmcv.ops.sigmoid_focal_loss`` at module
   level, so without help ``import mmseg.utils`` fails. When ``mmcv._ext`` is
   missing we register a small ``mmcv.ops`` module holding pure-PyTorch
   stand-ins for exactly those names. Any other op raises
   ``ModuleNotFoundError`` naming full mmcv, which is also what mmseg's own
   ``try: from mmcv.ops import X except ModuleNotFoundError`` guards expect.
   Users with full mmcv keep their compiled ops untouched.

2. **torch >= 2.6 ``weights_only`` loading.** mmengine 0.10.7 calls
   ``torch.load`` without ``weights_only``; since torch 2.6 that means
   ``weights_only=True`` and mmengine's own checkpoints (message hub history
   buffers, numpy scalars in ``meta``) are refused, which breaks ``--resume``.
   Rather than switching the safety off, the few types an mmengine checkpoint
   contains are allow-listed with :func:`torch.serialization.add_safe_globals`.
"""
import importlib.util
import sys
import types
import warnings

import torch
import torch.nn.functional as F

__all__ = ['install_mmcv_ops_fallback', 'allow_mmengine_checkpoints',
           'point_sample', 'sigmoid_focal_loss', 'MMCV_FULL_AVAILABLE']


def _has_compiled_mmcv_ops() -> bool:
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


MMCV_FULL_AVAILABLE = _has_compiled_mmcv_ops()


def point_sample(input: torch.Tensor,
                 points: torch.Tensor,
                 align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Pure-PyTorch ``mmcv.ops.point_sample``.

    Samples ``input`` at normalised point coordinates in ``[0, 1]``
    (x first), bilinearly, like mmcv's op.

    Args:
        input (Tensor): Feature map, shape (N, C, H, W).
        points (Tensor): Coordinates in [0, 1], shape (N, P, 2) or
            (N, Hg, Wg, 2).
        align_corners (bool): Passed to :func:`F.grid_sample`.

    Returns:
        Tensor: (N, C, P) or (N, C, Hg, Wg).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(
        input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    if add_dim:
        output = output.squeeze(3)
    return output


def sigmoid_focal_loss(input: torch.Tensor,
                       target: torch.Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight=None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Pure-PyTorch ``mmcv.ops.sigmoid_focal_loss``.

    Args:
        input (Tensor): Logits, shape (N, C).
        target (Tensor): Class indices, shape (N,); index C means background
            (no positive class), as in mmcv.
        weight (Tensor, optional): Per-class weight, shape (C,).
        reduction (str): 'none', 'mean' or 'sum'.

    Returns:
        Tensor: Loss of shape (N, C) for 'none', else a scalar.
    """
    num_classes = input.size(1)
    one_hot = F.one_hot(target.long(), num_classes + 1)[:, :num_classes]
    one_hot = one_hot.to(input.dtype)
    prob = input.sigmoid()
    pt = (1 - prob) * one_hot + prob * (1 - one_hot)
    focal_weight = (alpha * one_hot + (1 - alpha) * (1 - one_hot)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(
        input, one_hot, reduction='none') * focal_weight
    if weight is not None:
        loss = loss * weight.view(1, -1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


class _OpsFallbackModule(types.ModuleType):
    """``mmcv.ops`` stand-in: the stand-ins above, a clear error for the rest."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        # ModuleNotFoundError (not AttributeError) so that mmseg's
        # ``try: from mmcv.ops import X / except ModuleNotFoundError`` guards
        # behave exactly as on a machine without mmcv.
        raise ModuleNotFoundError(
            f'mmcv.ops.{name} needs the compiled ops of full mmcv, but only '
            'mmcv-lite (no compiled ops) is installed. mmseg_convlora provides '
            'pure-PyTorch stand-ins for point_sample and sigmoid_focal_loss '
            'only. Install full mmcv (mmcv>=2.0.0rc4,<2.2.0, built for your '
            'torch) to use this op.',
            name=f'mmcv.ops.{name}')


def install_mmcv_ops_fallback() -> bool:
    """Register the pure-PyTorch ``mmcv.ops`` when compiled ops are missing.

    Returns:
        bool: True if the fallback is (now) in place, False if full mmcv is
        available and was left alone.
    """
    if _has_compiled_mmcv_ops():
        return False
    existing = sys.modules.get('mmcv.ops')
    if isinstance(existing, _OpsFallbackModule):
        return True
    import mmcv
    ops = _OpsFallbackModule(
        'mmcv.ops', 'Pure-PyTorch stand-ins installed by mmseg_convlora.compat '
        '(mmcv-lite has no compiled ops).')
    ops.point_sample = point_sample
    ops.sigmoid_focal_loss = sigmoid_focal_loss
    ops.__path__ = []  # a package, so ``import mmcv.ops.x`` fails cleanly
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    return True


def _mmengine_checkpoint_globals() -> list:
    """Types that mmengine 0.10.x writes into its checkpoints."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    safe = [HistoryBuffer, np.ndarray, np.dtype]
    # numpy's reconstruct helpers moved from ``np.core`` to ``np._core`` in 2.0;
    # pickles name whichever the writer had.
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
    state = {k: v for k, v in self.__dict__.items()
             if k != 'statistics_methods'}
    custom = {k: v for k, v in self._statistics_methods.items()
              if k not in _DEFAULT_STATISTICS}
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
if not MMCV_FULL_AVAILABLE:
    # mmcv-lite warns about this op on every import of mmcv.cnn; nothing in
    # this plugin uses it, and any use still fails with the message above.
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
