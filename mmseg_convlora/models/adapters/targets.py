"""How adapters choose what they act on: regular expressions over names.

``LoRA``/``ConvLoRA`` (Linear layers), the hook-based adapters (modules)
and ``BitFit`` (parameters) all take ``targets``, one or more patterns
matched with ``re.fullmatch`` against the names inside the encoder, and
refuse an empty list, an invalid pattern and a pattern that matches
nothing, the same way.
"""
import re
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn

Targets = Union[str, Sequence[str]]


def encoder_description(encoder: nn.Module) -> str:
    """How messages name ``encoder``."""
    if type(encoder).__name__ == 'ImageEncoderViT':
        return 'the SAM image encoder'
    return f'the {type(encoder).__name__} backbone'


def match_targets(
        names: Sequence[str],
        targets: Targets,
        adapter_name: str,
        what: str = 'module',
        where: str = 'the SAM image encoder',
        fix: str = 'fix the pattern',
        examples: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """The names that ``re.fullmatch`` one of the patterns.

    Args:
        names (Sequence[str]): Candidate names (module or parameter names
            inside the encoder), in the order to keep.
        targets (str | Sequence[str]): Regular expression(s).
        adapter_name (str): Used in error messages.
        what (str): What the names are ('module', 'parameter').
        where (str): What holds them, for messages.
        fix (str): The advice when a pattern matches nothing.
        examples (Sequence[str], optional): Names to show when a pattern
            matches nothing (default: the first of ``names``).

    Returns:
        list[tuple[str, str]]: ``(name, pattern)`` of every matching name,
        in the order of ``names``, each once (with the first pattern it
        matches).

    Raises:
        ValueError: No pattern, an invalid pattern, or a pattern that
            matches no name (the message shows names it could match).
    """
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns:
        raise ValueError(
            f'{adapter_name}: targets is empty; give at least one {what}-'
            f'name pattern ({fix}).')
    regexes = []
    for pattern in patterns:
        try:
            regexes.append((pattern, re.compile(pattern)))
        except re.error as err:
            raise ValueError(f'{adapter_name}: target pattern "{pattern}" is '
                             f'not a valid regular expression: {err}') from err
    matched = {}
    for pattern, regex in regexes:
        hits = [n for n in names if regex.fullmatch(n)]
        if not hits:
            shown = list(names if examples is None else examples)[:6]
            example = ', '.join(repr(n) for n in shown)
            raise ValueError(
                f'{adapter_name}: target pattern "{pattern}" matches no '
                f'{what} of {where}. Patterns are matched with re.fullmatch '
                f'against names such as {example}; {fix}.')
        for name in hits:
            matched.setdefault(name, pattern)
    return [(n, matched[n]) for n in names if n in matched]
