from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ParamCountHook(Hook):
    """Log trainable and total parameters at the start of training, as the
    PEFT papers' tables report them."""

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        runner.logger.info(
            f'Trainable parameters: {trainable:,} of {total:,} '
            f'({100.0 * trainable / max(total, 1):.2f}%, '
            f'{trainable / 1e6:.2f}M)')
