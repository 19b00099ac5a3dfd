"""FSDP support (``configs/convlora/sbu_fsdp.py``): one FSDP unit per SAM
ViT block, gradient clipping by the global norm, trainable-only
checkpoints under FSDP's module names."""
from .fsdp_clip_grad_hook import FSDPClipGradHook
from .fsdp_trainable_checkpoint_hook import FSDPTrainableCheckpointHook
from .wrap_policy import sam_vit_block_wrap_policy

__all__ = [
    'FSDPClipGradHook', 'FSDPTrainableCheckpointHook',
    'sam_vit_block_wrap_policy'
]
