"""Checkpoints that hold what training changed, not the frozen SAM."""
from typing import Dict, Set

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


# Module-name parts that FSDP and activation-checkpoint wrappers insert;
# the state dicts they produce do not contain them.
_WRAPPER_PARTS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module')


def _clean_name(name: str) -> str:
    return '.'.join(p for p in name.split('.') if p not in _WRAPPER_PARTS)


def trainable_state_keys(model) -> Set[str]:
    """State-dict keys that training can change.

    Trainable parameters, plus buffers of modules that own a trainable
    parameter (e.g. BatchNorm statistics in CAD). Names are those of the
    unwrapped model (FSDP units inside the model are looked through).
    """
    keys = set()
    for mod_name, module in model.named_modules():
        mod_name = _clean_name(mod_name)
        prefix = mod_name + '.' if mod_name else ''
        own = list(module.named_parameters(recurse=False))
        trainable = False
        for name, param in own:
            if param.requires_grad:
                keys.add(prefix + name)
                trainable = True
        if trainable:
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None and name not in module._non_persistent_buffers_set:
                    keys.add(prefix + name)
    return keys


def peft_signature(model) -> Dict[str, object]:
    """What a checkpoint must match to load onto ``model``."""
    backbone = getattr(model, 'backbone', None)
    adapters = [type(a).__name__ for a in getattr(backbone, 'adapters', [])]
    return dict(
        arch=getattr(backbone, 'arch_name', None),
        adapters=adapters or ['none (decoder-only)'],
        num_classes=getattr(getattr(model, 'decode_head', None),
                            'out_channels', None))


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Save only trainable weights; fill in the frozen SAM weights on load.

    A Conv-LoRA ViT-H checkpoint is then tens of MB instead of 2.5 GB, as in
    mmpretrain's LoRA. The frozen weights are rebuilt from the SAM checkpoint
    the config names (``sam_checkpoint``), so ``tools/test.py CONFIG CKPT``
    and ``--resume`` work unchanged. The checkpoint's ``meta`` records the
    arch and adapters; loading it into a model with other ones is refused.

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
        return model.module if is_model_wrapper(model) else model

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
        model = self._model(runner)
        saved = checkpoint.get('meta', {}).get('peft')
        if saved is not None:
            current = peft_signature(model)
            diff = {
                k: (saved.get(k), v)
                for k, v in current.items() if saved.get(k) != v
            }
            if diff:
                details = '; '.join(f'{k}: checkpoint {a!r}, config {b!r}'
                                    for k, (a, b) in diff.items())
                raise RuntimeError(
                    'The checkpoint was trained with another model than this '
                    f'config builds ({details}). Load it with the config it '
                    'was trained with, or start a new run without --resume/'
                    'load_from.')
        state = checkpoint.get('state_dict')
        if state is None:
            return
        # The frozen SAM weights were loaded when the model was built.
        for key, value in model.state_dict().items():
            if key not in state:
                state[key] = value
