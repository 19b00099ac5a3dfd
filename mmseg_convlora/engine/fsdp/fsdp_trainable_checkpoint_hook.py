from mmseg.registry import HOOKS

from ...models.utils.peft_checkpoint import trainable_state_keys
from ..hooks.trainable_checkpoint_hook import TrainableCheckpointHook

FSDP_PREFIX = '_fsdp_wrapped_module.'


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
