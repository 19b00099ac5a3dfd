"""The OpenMMLab stack on what pip installs today: mmcv-lite and torch's
``weights_only`` loading. Imported first by :mod:`mmseg_convlora`; see
``docs/faults.md`` for why each piece exists."""
import contextlib
import importlib

import torch

from mmseg_convlora_mmcv_ops import (has_compiled_mmcv_ops, install,
                                     point_sample, sigmoid_focal_loss)

__all__ = [
    'MMCV_FULL_AVAILABLE', 'point_sample', 'sigmoid_focal_loss',
    'allow_mmengine_checkpoint_types', 'safe_torch_load'
]

MMCV_FULL_AVAILABLE = has_compiled_mmcv_ops()


def import_torchvision() -> None:
    """Import torchvision (``segment_anything`` needs it), or fail in one
    line naming both versions when it was built for another torch."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:  # operator torchvision::nms does not exist
        from importlib.metadata import version
        base, _, build = torch.__version__.partition('+')
        index = build and f' --index-url https://download.pytorch.org/whl/' \
            f'{build}'
        raise ImportError(
            f'torchvision {version("torchvision")} does not match torch '
            f'{torch.__version__} ({err}); install both in one command from '
            f'one index: pip install --force-reinstall torch=={base} '
            f'torchvision{index}') from None


def mmengine_checkpoint_types() -> list:
    """The types mmengine 0.10 pickles into checkpoints besides tensors:
    message-hub history buffers and numpy arrays, scalars and dtypes."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    types = [HistoryBuffer, np.ndarray, np.dtype]
    # numpy 2 moved np.core to np._core; pickles name the writer's
    for mod_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        types += [(getattr(mod, attr), f'{mod_name}.{attr}')
                  for attr in ('_reconstruct', 'scalar') if hasattr(mod, attr)]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        types += [
            obj for obj in vars(dtypes).values()
            if isinstance(obj, type) and issubclass(obj, np.dtype)
        ]
    return types


def allow_mmengine_checkpoint_types():
    """Context in which ``torch.load(weights_only=True)`` accepts
    :func:`mmengine_checkpoint_types` (a no-op on torch < 2.5)."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        return contextlib.nullcontext()
    return safe_globals(mmengine_checkpoint_types())


def safe_torch_load(path: str, map_location='cpu'):
    """``torch.load(weights_only=True)`` that also reads checkpoints holding
    mmengine objects (written by earlier versions of this package)."""
    with allow_mmengine_checkpoint_types():
        return torch.load(path, map_location=map_location, weights_only=True)


install()
import_torchvision()
