"""Data-parallel training through mmengine, also without GPUs (gloo)."""
from .cpu_process_group import init_dist_on_cpu, shutdown_distributed
from .cpu_sync_batchnorm import CPUSyncBatchNorm
from .sam_distributed_data_parallel import (SAMDistributedDataParallel,
                                            needs_find_unused_parameters)

__all__ = [
    'CPUSyncBatchNorm', 'needs_find_unused_parameters',
    'SAMDistributedDataParallel', 'init_dist_on_cpu', 'shutdown_distributed'
]
