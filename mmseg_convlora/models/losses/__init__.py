from .balanced_bce_loss import BalancedBCELoss
from .structure_loss import StructureLoss

__all__ = ['BalancedBCELoss', 'StructureLoss']
