from .param_count_hook import ParamCountHook
from .save_predictions_hook import SavePredictionsHook
from .trainable_checkpoint_hook import (TrainableCheckpointHook,
                                        peft_signature, trainable_state_keys)

__all__ = [
    'ParamCountHook', 'SavePredictionsHook', 'TrainableCheckpointHook', 'peft_signature',
    'trainable_state_keys'
]
