from .base_adapter import BaseSAMAdapter

__all__ = ['BaseSAMAdapter']
