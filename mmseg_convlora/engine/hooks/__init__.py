from .param_count_hook import ParamCountHook
from .trainable_checkpoint_hook import (TrainableCheckpointHook,
                                        peft_signature, trainable_state_keys)

__all__ = [
    'ParamCountHook', 'TrainableCheckpointHook', 'peft_signature',
    'trainable_state_keys'
]
