from .param_count import (SAM_DECODER_BINARY_TRAINABLE,
                          decoder_trainable_formula, trainable_breakdown)
from .sam_checkpoint import (OFFICIAL_CHECKPOINTS, SAM_ARCHS,
                             SAMCheckpointError, arch_name, describe_encoder,
                             load_sam_state_dict, sub_state_dict)

__all__ = [
    'SAM_DECODER_BINARY_TRAINABLE', 'decoder_trainable_formula',
    'trainable_breakdown',     'OFFICIAL_CHECKPOINTS', 'SAM_ARCHS', 'SAMCheckpointError', 'arch_name',
    'describe_encoder', 'load_sam_state_dict', 'sub_state_dict'
]
