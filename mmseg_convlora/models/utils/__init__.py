from .param_count import (SAM_DECODER_BINARY_TRAINABLE,
                          decoder_trainable_formula, trainable_breakdown)
from .peft_checkpoint import (CheckpointMismatchError, check_peft_signature,
                              check_state_dict, load_peft_checkpoint,
                              peft_signature, prepare_state_dict,
                              trainable_state_keys)
from .sam_checkpoint import (MOBILE_SAM_HOWTO, OFFICIAL_CHECKPOINTS, SAM_ARCHS,
                             TINY_VIT_ARCHS, TINY_VIT_CHECKPOINTS,
                             SAMCheckpointError, arch_name, describe_encoder,
                             describe_tiny_vit, encoder_family,
                             load_sam_state_dict, sub_state_dict)

__all__ = [
    'SAM_DECODER_BINARY_TRAINABLE', 'decoder_trainable_formula',
    'trainable_breakdown', 'MOBILE_SAM_HOWTO', 'OFFICIAL_CHECKPOINTS',
    'SAM_ARCHS', 'TINY_VIT_ARCHS', 'TINY_VIT_CHECKPOINTS',
    'SAMCheckpointError', 'arch_name', 'describe_encoder', 'describe_tiny_vit',
    'encoder_family', 'load_sam_state_dict', 'sub_state_dict',
    'CheckpointMismatchError', 'check_peft_signature', 'check_state_dict',
    'load_peft_checkpoint', 'peft_signature', 'prepare_state_dict',
    'trainable_state_keys'
]
