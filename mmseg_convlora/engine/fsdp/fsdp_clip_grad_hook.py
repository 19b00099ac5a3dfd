import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


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
