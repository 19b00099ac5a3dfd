from .multi_dataset_loops import MultiDatasetTestLoop, MultiDatasetValLoop

__all__ = ['MultiDatasetTestLoop', 'MultiDatasetValLoop']
