"""Run with 2 processes on gloo (tests/engine/test_distributed.py): rank 0
is still busy (as when it replaces the best checkpoint) when rank 1 ends.
``shutdown_distributed`` must return on rank 1 only once rank 0 is done,
and leave no thread running. Exits non-zero otherwise."""
import os
import sys
import threading
import time

import torch.distributed as dist

from mmseg_convlora.engine import shutdown_distributed

marker = sys.argv[1]
dist.init_process_group('gloo')
rank = dist.get_rank()
dist.barrier()
if rank == 0:
    time.sleep(1)
    open(marker, 'w').close()
shutdown_distributed()
assert os.path.exists(marker), f'rank {rank} ended before rank 0 was done'
assert not dist.is_initialized()
assert threading.active_count() == 1, threading.enumerate()
print(f'rank {rank} OK', flush=True)
