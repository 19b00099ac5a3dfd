"""The one matcher of name patterns (adapter ``targets``, token-grid
rules): ``re.fullmatch``, refusing empty, invalid and unused patterns."""
import re
from typing import Dict, Optional, Sequence, Union

import torch.nn as nn

Targets = Union[str, Sequence[str]]


def encoder_description(encoder: nn.Module) -> str:
    """How messages name ``encoder``."""
    if type(encoder).__name__ == 'ImageEncoderViT':
        return 'the SAM image encoder'
    return f'the {type(encoder).__name__} backbone'


def match_targets(names: Sequence[str],
                  targets: Targets,
                  owner: str,
                  what: str = 'module',
                  where: str = 'the SAM image encoder',
                  fix: str = 'fix the pattern',
                  examples: Optional[Sequence[str]] = None,
                  every_pattern: bool = True) -> Dict[str, re.Match]:
    """Each name that ``re.fullmatch``-es a pattern of ``targets`` -> the
    match of its first such pattern; bad or (``every_pattern``) unused
    patterns raise a ValueError."""
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns:
        raise ValueError(f'{owner}: targets is empty; give at least one '
                         f'{what}-name pattern ({fix}).')
    regexes = []
    for pattern in patterns:
        try:
            regexes.append(re.compile(pattern))
        except re.error as err:
            raise ValueError(f'{owner}: target pattern "{pattern}" is not a '
                             f'valid regular expression: {err}') from err
    matched: Dict[str, re.Match] = {}
    for regex in regexes:
        hits = [(n, m) for n in names if (m := regex.fullmatch(n))]
        if not hits and every_pattern:
            shown = ', '.join(
                repr(n)
                for n in list(names if examples is None else examples)[:6])
            raise ValueError(
                f'{owner}: target pattern "{regex.pattern}" matches no '
                f'{what} of {where}. Patterns are matched with re.fullmatch '
                f'against names such as {shown}; {fix}.')
        for name, match in hits:
            matched.setdefault(name, match)
    return {n: matched[n] for n in names if n in matched}
