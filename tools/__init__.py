"""Command-line tools; helper modules are importable as ``tools.*``."""
