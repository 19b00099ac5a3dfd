from .sam_checkpoint import (OFFICIAL_CHECKPOINTS, SAM_ARCHS,
                             SAMCheckpointError, arch_name, describe_encoder,
                             load_sam_state_dict, sub_state_dict)

__all__ = [
    'OFFICIAL_CHECKPOINTS', 'SAM_ARCHS', 'SAMCheckpointError', 'arch_name',
    'describe_encoder', 'load_sam_state_dict', 'sub_state_dict'
]
