"""FSDP support (``configs/convlora/sbu_fsdp.py``): one FSDP unit per SAM
ViT block, gradient clipping by the global norm, trainable-only
checkpoints under FSDP's module names."""
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.registry import FUNCTIONS
from mmseg.registry import HOOKS

from ..models.utils.peft_checkpoint import trainable_state_keys
from .hooks.trainable_checkpoint_hook import TrainableCheckpointHook

__all__ = [
    'FSDPClipGradHook', 'FSDPTrainableCheckpointHook',
    'sam_vit_block_wrap_policy'
]

FSDP_PREFIX = '_fsdp_wrapped_module.'


@FUNCTIONS.register_module()
def sam_vit_block_wrap_policy(module: nn.Module,
                              recurse: bool,
                              nonwrapped_numel: int = 0,
                              **kwargs) -> bool:
    """FSDP ``auto_wrap_policy``: one FSDP unit per SAM ViT block, the rest
    in the root unit (``dict(type='sam_vit_block_wrap_policy')``)."""
    if recurse:
        return True
    from segment_anything.modeling.image_encoder import Block
    return isinstance(module, Block)


@HOOKS.register_module()
class FSDPClipGradHook(Hook):
    """Clip gradients by the norm over all FSDP shards (the model's
    ``clip_grad_norm_``; mmengine's clips each shard on its own)."""

    def before_train(self, runner) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel
        model, wrapper = runner.model, runner.optim_wrapper
        if not isinstance(model, FullyShardedDataParallel) or getattr(
                wrapper, 'clip_func', None) is not \
                torch.nn.utils.clip_grad_norm_:
            return

        def clip_global_norm(params, max_norm, norm_type=2.0, **kwargs):
            return model.clip_grad_norm_(max_norm, norm_type)

        wrapper.clip_func = clip_global_norm
        runner.logger.info('FSDPClipGradHook: gradients are clipped by '
                           'the global norm over all shards.')


class _UnwrappedNames:
    """``named_parameters`` of an FSDP model under the model's own names."""

    def __init__(self, model):
        self.model = model

    def named_parameters(self, **kwargs):
        for name, param in self.model.named_parameters(**kwargs):
            yield name.replace(FSDP_PREFIX, ''), param


@HOOKS.register_module()
class FSDPTrainableCheckpointHook(TrainableCheckpointHook):
    """:class:`TrainableCheckpointHook` for FSDP, whose module names hold
    ``_fsdp_wrapped_module`` (its full state dict does not)."""

    def trainable_keys(self, model, state_keys) -> set:
        return trainable_state_keys(_UnwrappedNames(model), state_keys)
