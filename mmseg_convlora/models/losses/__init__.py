from .balanced_bce_loss import BalancedBCELoss
from .mask_classification_loss import (MaskClassificationLoss, hungarian_match,
                                       sem_seg_to_segments)
from .structure_loss import StructureLoss

__all__ = [
    'BalancedBCELoss', 'MaskClassificationLoss', 'StructureLoss',
    'hungarian_match', 'sem_seg_to_segments'
]
