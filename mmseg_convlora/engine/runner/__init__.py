from .checkpoint_files import (CheckpointFileError, find_resume_checkpoint,
                               verify_checkpoint)
from .multi_dataset_loops import (MultiDatasetTestLoop, MultiDatasetValLoop,
                                  named_sets)
from .quiet_runner import QuietRunner
from .work_dir_lock import WorkDirLock, WorkDirLockedError

__all__ = [
    'CheckpointFileError', 'find_resume_checkpoint', 'verify_checkpoint',
    'MultiDatasetTestLoop', 'MultiDatasetValLoop', 'named_sets', 'QuietRunner',
    'WorkDirLock', 'WorkDirLockedError'
]
