import datetime
import logging
import os
import sys

import torch
import torch.distributed as dist
from mmengine.logging import print_log


def init_dist_on_cpu(launcher: str, cfg) -> bool:
    """Start a gloo process group when launched by torchrun without GPUs
    (mmengine's ``init_dist`` selects a CUDA device first).

    Args:
        launcher (str): ``--launcher`` of the tool.
        cfg (Config): The run's config: ``env_cfg.dist_cfg`` (``nccl``
            becomes ``gloo``); ``FSDPStrategy`` gets ``device_id='cpu'``.

    Returns:
        bool: Whether a process group was started here.
    """
    torchrun = {'RANK', 'WORLD_SIZE'} <= set(os.environ)
    if launcher != 'pytorch' or torch.cuda.is_available() or not torchrun \
            or not dist.is_available() or dist.is_initialized():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}) or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        print_log(
            f'No GPU available: using the gloo backend instead of '
            f'{backend!r} for this CPU run.',
            logger='current',
            level=logging.WARNING)
    strategy = cfg.get('strategy')
    if isinstance(strategy, dict) and strategy.get('type') == 'FSDPStrategy':
        # mmengine passes the local rank as a CUDA device id
        wrapper = strategy.get('model_wrapper') or dict(
            type='MMFullyShardedDataParallel')
        wrapper.setdefault('device_id', 'cpu')
        strategy['model_wrapper'] = wrapper
    timeout = dist_cfg.get('timeout')
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
    dist.init_process_group(backend='gloo', **dist_cfg)
    return True


def shutdown_distributed() -> None:
    """End a distributed run (in a ``finally``): wait for the other ranks
    (unless an exception is on its way out), destroy the process group."""
    if not dist.is_available() or not dist.is_initialized():
        return
    if sys.exc_info()[0] is None:  # a failed rank may never meet the others
        dist.barrier()
    dist.destroy_process_group()
