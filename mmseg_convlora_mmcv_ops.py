"""``mmcv.ops`` for mmcv-lite, active before anything imports mmseg.

mmseg imports ``mmcv.ops.point_sample`` and ``sigmoid_focal_loss`` at module
level; mmcv-lite has no compiled ops. :func:`install` adds an import hook
that serves pure-PyTorch stand-ins for exactly those names when (and only
when) ``mmcv._ext`` is missing; other ops raise ``ModuleNotFoundError``.
The ``.pth`` file that ``pip install`` writes calls it at interpreter start,
so this module imports nothing heavy. It is a top-level module because
importing ``mmseg_convlora`` imports mmseg first.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

__all__ = [
    'install', 'has_compiled_mmcv_ops', 'point_sample', 'sigmoid_focal_loss'
]


def has_compiled_mmcv_ops() -> bool:
    """True when full mmcv (with ``mmcv._ext``) is installed."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def point_sample(input, points, align_corners: bool = False, **kwargs):
    """Pure-PyTorch ``mmcv.ops.point_sample``.

    Samples ``input`` at normalised point coordinates in ``[0, 1]``
    (x first), bilinearly, like mmcv's op.

    Args:
        input (Tensor): Feature map, shape (N, C, H, W).
        points (Tensor): Coordinates in [0, 1], shape (N, P, 2) or
            (N, Hg, Wg, 2).
        align_corners (bool): Passed to ``F.grid_sample``.

    Returns:
        Tensor: (N, C, P) or (N, C, Hg, Wg).
    """
    import torch.nn.functional as F
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(
        input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    if add_dim:
        output = output.squeeze(3)
    return output


def sigmoid_focal_loss(input,
                       target,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight=None,
                       reduction: str = 'mean'):
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
    import torch.nn.functional as F
    num_classes = input.size(1)
    one_hot = F.one_hot(target.long(), num_classes + 1)[:, :num_classes]
    one_hot = one_hot.to(input.dtype)
    prob = input.sigmoid()
    pt = (1 - prob) * one_hot + prob * (1 - one_hot)
    focal_weight = (alpha * one_hot + (1 - alpha) *
                    (1 - one_hot)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(
        input, one_hot, reduction='none') * focal_weight
    if weight is not None:
        loss = loss * weight.view(1, -1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


class FallbackOpsModule(types.ModuleType):
    """``mmcv.ops`` stand-in: the two ops above, a clear error for others."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        # ModuleNotFoundError (not AttributeError) so that mmseg's
        # ``try: from mmcv.ops import X / except ModuleNotFoundError`` guards
        # behave exactly as on a machine without mmcv.
        raise ModuleNotFoundError(
            f'mmcv.ops.{name} needs the compiled ops of full mmcv, but only '
            'mmcv-lite (no compiled ops) is installed. mmseg_convlora '
            'provides pure-PyTorch stand-ins for point_sample and '
            'sigmoid_focal_loss only. Install full mmcv '
            '(mmcv>=2.0.0rc4,<2.2.0, built for your torch) to use this op.',
            name=f'mmcv.ops.{name}')


class MmcvOpsFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import hook that serves ``mmcv.ops`` when compiled ops are missing."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'mmcv.ops' or has_compiled_mmcv_ops():
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return FallbackOpsModule(
            spec.name, 'Pure-PyTorch stand-ins installed by mmseg_convlora '
            '(mmcv-lite has no compiled ops).')

    def exec_module(self, module):
        module.point_sample = point_sample
        module.sigmoid_focal_loss = sigmoid_focal_loss
        module.__path__ = []  # a package: ``import mmcv.ops.x`` fails cleanly
        # mmcv-lite warns about this op on every import of mmcv.cnn; nothing
        # in mmseg_convlora uses it, and any use still fails as above.
        warnings.filterwarnings(
            'ignore',
            message='Fail to import ``MultiScaleDeformableAttention``')


def install() -> None:
    """Put the ``mmcv.ops`` hook first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MmcvOpsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MmcvOpsFinder())
