from .multi_dataset_loops import MultiDatasetTestLoop, MultiDatasetValLoop
from .quiet_runner import QuietRunner

__all__ = ['MultiDatasetTestLoop', 'MultiDatasetValLoop', 'QuietRunner']
