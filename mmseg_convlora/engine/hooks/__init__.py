from .dataset_size_hook import DatasetSizeHook
from .exact_resume_hook import ExactResumeHook
from .non_finite_loss_hook import (FiniteGradientCheck, NonFiniteLossError,
                                   NonFiniteLossHook)
from .param_count_hook import ParamCountHook
from .progress_log_hook import ProgressLogHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .save_predictions_hook import SavePredictionsHook
from .trainable_checkpoint_hook import (TrainableCheckpointHook,
                                        peft_signature, trainable_state_keys)

__all__ = [
    'DatasetSizeHook', 'ExactResumeHook', 'FiniteGradientCheck',
    'NonFiniteLossError', 'NonFiniteLossHook', 'ParamCountHook',
    'ProgressLogHook', 'SafeCheckpointHook', 'SavePredictionsHook',
    'TrainableCheckpointHook', 'peft_signature', 'trainable_state_keys'
]
