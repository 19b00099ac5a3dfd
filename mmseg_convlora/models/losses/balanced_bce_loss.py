"""The class-balanced BCE of SAM-Adapter and Conv-LoRA for shadows."""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .utils import BinaryLoss


@MODELS.register_module()
class BalancedBCELoss(BinaryLoss):
    """BCE with each class weighted by the other class's pixel share.

    Args:
        loss_weight (float): Multiplier of the loss. Default 1.
        loss_name (str): Name of the loss in the log. Default 'loss_bbce'.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_bbce'):
        super().__init__(loss_weight, loss_name)

    def compute(self, logits: Tensor, t: Tensor, valid: Tensor) -> Tensor:
        pos = (t * valid).sum() + 1e-10
        neg = ((1 - t) * valid).sum()
        # one class only (no host sync: a tensor condition)
        single = (pos < 0.5) | (neg < 0.5)
        half = torch.full_like(pos, 0.5)
        w_pos = torch.where(single, half, neg / (pos + neg))
        w_neg = torch.where(single, half, pos / (pos + neg))
        # log-sigmoid forms are the numerically stable log s and log(1 - s)
        loss = -(
            w_pos * t * F.logsigmoid(logits) + w_neg *
            (1 - t) * F.logsigmoid(-logits))
        return self.loss_weight * (loss *
                                   valid).sum() / valid.sum().clamp(min=1)
