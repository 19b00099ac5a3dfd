"""Data-parallel training of the PEFT SAM models through mmengine.

What DDP needs from these models, decided once here instead of per config:

* **Unused parameters.** Conv-LoRA's ``'grouped'`` dispatch runs only the
  experts some window was routed to, so the other experts get no gradient
  and DDP's reducer would wait for them forever (``find_unused_parameters``
  must be True). ``'dense'`` dispatch (the ``'auto'`` choice on CUDA) runs
  every expert and gives unselected ones an exact zero gradient, so the
  cheaper ``find_unused_parameters=False`` is right; the Conv-LoRA layer
  says which case it is in. The frozen SAM encoder (and CAD's encoder, run
  under ``no_grad``) has ``requires_grad=False`` and is not registered
  with DDP at all. :class:`SAMDistributedDataParallel` looks at the model
  and picks the flag (``find_unused_parameters='auto'``).
* **BatchNorm.** CAD has BatchNorm layers; with per-GPU batches of 1 their
  statistics must be synchronised. The wrapper converts every BatchNorm to
  SyncBN when it wraps (not distributed: nothing happens, and an explicit
  ``norm_cfg=dict(type='SyncBN')`` is reverted to BN by mmengine). On GPUs
  it is PyTorch's ``SyncBatchNorm``; PyTorch refuses that on CPU, so CPU
  (gloo) runs get :class:`CPUSyncBatchNorm`, which all-reduces the
  statistics itself.
* **CPU launch.** mmengine's ``init_dist('pytorch')`` calls
  ``torch.cuda.set_device`` and fails on a machine without GPUs;
  :func:`init_dist_on_cpu` starts a gloo process group first and
  :func:`shutdown_distributed` ends it (used by ``tools/train.py`` and
  ``tools/test.py``).
* **FSDP.** :func:`sam_vit_block_wrap_policy` makes one FSDP unit per SAM
  ViT block (the clipping by the global norm is
  :class:`~mmseg_convlora.engine.hooks.FSDPClipGradHook`).
"""
from .cpu_process_group import init_dist_on_cpu, shutdown_distributed
from .fsdp_wrap_policy import sam_vit_block_wrap_policy
from .sam_distributed_data_parallel import (SAMDistributedDataParallel,
                                            needs_find_unused_parameters)
from .sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm

__all__ = [
    'CPUSyncBatchNorm', 'convert_sync_batchnorm',
    'needs_find_unused_parameters', 'SAMDistributedDataParallel',
    'init_dist_on_cpu', 'shutdown_distributed', 'sam_vit_block_wrap_policy'
]
