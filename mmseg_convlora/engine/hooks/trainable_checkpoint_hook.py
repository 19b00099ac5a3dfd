from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmseg.registry import HOOKS

from ...models.utils.peft_checkpoint import (CheckpointMismatchError,
                                             check_peft_signature,
                                             integrity_record, peft_signature,
                                             trainable_state_keys, with_record)

RESUME_ADVICE = ('--resume continues a run with the config it was started '
                 'with: use that config (the work dir holds a copy of it), or '
                 'start a new run in another --work-dir.')


def unwrap(model):
    """The model inside a DDP/FSDP/TTA wrapper."""
    if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        return model.module
    return model


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Save only the trainable weights and the model's signature (the frozen
    ones come from ``model.sam_checkpoint``; see ``docs/faults.md``).

    Args:
        save_frozen (bool): Keep the full state dict (e.g. to export a
            stand-alone model). Defaults to False.
    """

    priority = 'VERY_LOW'  # after other hooks have added their entries

    def __init__(self, save_frozen: bool = False):
        self.save_frozen = save_frozen

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap(runner.model)
        meta = checkpoint.setdefault('meta', {})
        meta['peft'] = peft_signature(model)
        state = checkpoint['state_dict']
        keep = self.trainable_keys(runner.model, state)
        record = integrity_record(
            state, keep,
            getattr(model, 'frozen_weights_from', None) or {})
        if not self.save_frozen:
            meta['peft']['frozen_weights_saved'] = False
            state = {k: v for k, v in state.items() if k in keep}
        checkpoint['state_dict'] = with_record(
            state, record, source=checkpoint['state_dict'])

    def trainable_keys(self, model, state_keys) -> set:
        """The keys of ``state_keys`` to save; ``model`` is the runner's
        (wrapped) model. Wrappers that rename parameters override it."""
        return trainable_state_keys(model, state_keys)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta')
        try:
            check_peft_signature(
                meta.get('peft') if isinstance(meta, dict) else None,
                unwrap(runner.model))
        except CheckpointMismatchError as err:
            cfg = getattr(runner, 'cfg', {})
            if cfg.get('load_from'):
                err.source = f'The checkpoint {cfg["load_from"]!r}'
            if cfg.get('resume'):
                err.advice = RESUME_ADVICE
            raise
