"""Checkpoints that hold what training changed, not the frozen SAM."""
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmseg.registry import HOOKS

from ...models.utils.peft_checkpoint import (peft_signature,
                                             prepare_state_dict,
                                             trainable_state_keys)

RESUME_ADVICE = ('--resume continues a run with the config it was started '
                 'with: use that config (the work dir holds a copy of it), or '
                 'start a new run in another --work-dir.')
LOAD_ADVICE = ('Use the config the checkpoint was trained with (its '
               'training work dir holds a copy of it).')


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Save only trainable weights; fill in the frozen SAM weights on load.

    A Conv-LoRA ViT-H checkpoint is then tens of MB instead of 2.5 GB, as in
    mmpretrain's LoRA. The frozen weights are rebuilt from the SAM checkpoint
    the config names (``sam_checkpoint``), so ``tools/test.py CONFIG CKPT``
    and ``--resume`` work unchanged. The checkpoint's ``meta`` records the
    arch, adapters and classes; loading it into a model with other ones, or
    loading a file without the model's trainable weights, is refused (see
    :func:`mmseg_convlora.models.utils.prepare_state_dict`).

    Args:
        save_frozen (bool): Keep the full state dict (e.g. to export a
            stand-alone model). Default False.
    """

    priority = 'VERY_LOW'  # after other hooks have added their entries

    def __init__(self, save_frozen: bool = False):
        self.save_frozen = save_frozen

    @staticmethod
    def _model(runner):
        model = runner.model
        if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        return model

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = self._model(runner)
        checkpoint.setdefault('meta', {})['peft'] = peft_signature(model)
        if self.save_frozen:
            return
        keep = trainable_state_keys(model)
        state = checkpoint['state_dict']
        checkpoint['state_dict'] = type(state)(
            (k, v) for k, v in state.items() if k in keep)
        checkpoint['meta']['peft']['frozen_weights_saved'] = False

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        cfg = getattr(runner, 'cfg', {})
        advice = RESUME_ADVICE if cfg.get('resume') else LOAD_ADVICE
        path = cfg.get('load_from')
        source = f'The checkpoint {path!r}' if path else 'The checkpoint'
        # a bare state dict (e.g. a SAM weights file) is checked too
        checkpoint['state_dict'] = prepare_state_dict(
            self._model(runner), checkpoint, source, advice)
