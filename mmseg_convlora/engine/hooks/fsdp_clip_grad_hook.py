import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FSDPClipGradHook(Hook):
    """Clip gradients by the global norm under FSDP.

    mmengine's ``OptimWrapper`` clips with ``torch.nn.utils.clip_grad_norm_``
    over the parameters it holds; under FSDP those are each process's
    shards, so every process would compute (and clip by) the norm of its
    own shard. This hook configures the package's optimizer wrapper
    (:class:`GlobalNormClip`) to clip with the FSDP model's
    ``clip_grad_norm_``, which all-reduces the norm first. Nothing happens
    when the model is not FSDP or ``clip_grad`` is not a norm clip.
    """

    def before_train(self, runner) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel

        from ..optimizers.global_norm_clip import GlobalNormClip
        model = runner.model
        if not isinstance(model, FullyShardedDataParallel):
            return
        wrapper = runner.optim_wrapper
        if getattr(wrapper, 'clip_func', None) is not \
                torch.nn.utils.clip_grad_norm_:
            return
        if not isinstance(wrapper, GlobalNormClip):
            raise TypeError(
                'FSDPClipGradHook needs the optimizer wrapper of '
                'mmseg_convlora (optim_wrapper.type="OptimWrapper" or '
                f'"AmpOptimWrapper"), got {type(wrapper).__name__}.')
        wrapper.clip_by_global_norm_of(model)
        runner.logger.info('FSDPClipGradHook: gradients are clipped by '
                           'the global norm over all shards.')
