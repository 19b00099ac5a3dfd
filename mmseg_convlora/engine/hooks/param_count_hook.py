from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...models.utils import decoder_trainable_formula, trainable_breakdown
from ...models.utils.peft_checkpoint import describe_model
from .trainable_checkpoint_hook import unwrap


@HOOKS.register_module()
class ParamCountHook(Hook):
    """Log trainable and total parameters as PEFT papers report them, per
    part, and a SAM decoder head's closed-form count next to the measured."""

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        runner.logger.info(f'Model: {type(model).__name__}, '
                           f'{describe_model(model)}')
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        runner.logger.info(f'Trainable parameters: {trainable:,} of {total:,} '
                           f'({100.0 * trainable / max(total, 1):.2f}%, '
                           f'{trainable / 1e6:.2f}M)')
        parts = trainable_breakdown(model)
        runner.logger.info('Trainable by part: ' +
                           ', '.join(f'{k} {v:,}' for k, v in parts.items()))
        head = getattr(model, 'decode_head', None)
        if getattr(head, 'embed_dim', None) == 256:
            n, k = head.num_queries, head.out_channels  # k = 1: binary head
            runner.logger.info(
                f'Decoder formula 3,505,536 + 256 x ({n} - 1) tokens' +
                (f' + 257 x ({k} + 1) classifier' if k > 1 else '') +
                f' = {decoder_trainable_formula(n, k):,} (measured '
                f'{parts.get("decoder", 0):,})')
