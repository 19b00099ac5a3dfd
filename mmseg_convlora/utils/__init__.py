"""Utilities below every other part of the package."""
from .deprecated_alias import RENAMED, register_deprecated_alias

__all__ = ['RENAMED', 'register_deprecated_alias']
