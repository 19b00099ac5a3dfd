"""Config keys a registered class does not take, with the likely fix."""
import difflib
import inspect
from typing import Optional

from mmengine.registry import Registry


def check_config_keys(registry: Registry,
                      cfg: dict,
                      where: str = 'the config') -> None:
    """Refuse keys of ``cfg`` (at ``where``, e.g. model.backbone.adapter)
    that its class's ``__init__`` does not take, naming its arguments and
    the nearest one (``rnak`` -> ``rank``)."""
    cls = registry.get(cfg.get('type')) if isinstance(cfg.get('type'),
                                                      str) else cfg.get('type')
    if not inspect.isclass(cls):
        return  # mmengine's own error names an unknown type
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n != 'self']
    unknown = [k for k in cfg if k != 'type' and k not in allowed]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close: Optional[list] = difflib.get_close_matches(key, allowed, n=1)
        hints.append(
            f'{key!r} (did you mean {close[0]!r}?)' if close else repr(key))
    raise TypeError(
        f'{cls.__name__} in {where} does not take {", ".join(hints)}. Its '
        f'arguments are: {", ".join(allowed)}.')
