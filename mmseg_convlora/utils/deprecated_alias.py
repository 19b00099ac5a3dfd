"""Registry names kept for configs written before a rename."""
import logging
from typing import Dict

from mmengine.logging import print_log
from mmengine.registry import Registry

#: Old registry name -> new name, of every alias registered.
RENAMED: Dict[str, str] = {}


def register_deprecated_alias(registry: Registry, old: str, new: str) -> None:
    """Make ``type=old`` in ``registry`` build ``new``, warning once;
    raises KeyError if ``old`` is taken there or in a parent (mmseg,
    mmengine)."""
    if registry.get(old) is not None:
        raise KeyError(f'{old!r} is already registered in {registry.name}; '
                       'an alias must not replace it.')

    warned = False

    def build(*args, **kwargs):
        nonlocal warned
        if not warned:
            warned = True
            print_log(
                f"type='{old}' is deprecated: write type='{new}'.",
                logger='current',
                level=logging.WARNING)
        return registry.get(new)(*args, **kwargs)

    build.__name__ = build.__qualname__ = old
    registry.register_module(name=old, module=build)
    RENAMED[old] = new
