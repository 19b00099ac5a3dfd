"""The class-balanced BCE that SAM-Adapter and Conv-LoRA train shadows with."""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .utils import binary_target_and_mask


@MODELS.register_module()
class BalancedBCELoss(torch.nn.Module):
    """BCE with each class weighted by the other class's share.

    With ``P = sum(t) + 1e-10`` and ``Q = sum(1 - t)`` over all (valid)
    pixels of the images given::

        L = mean_i[ -(Q / (P + Q)) t_i log s(x_i)
                    - (P / (P + Q)) (1 - t_i) log(1 - s(x_i)) ]

    so the rarer class (usually shadow) gets the larger weight. Pixels equal
    to ``ignore_index`` are excluded from the sums and the mean.

    Args:
        loss_weight (float): Multiplier of the loss.
        loss_name (str): Name of the loss in the log.
    """

    def __init__(self, loss_weight: float = 1.0,
                 loss_name: str = 'loss_bbce'):
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight=None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """Args:
            pred (Tensor): Logits, (B, 1, H, W) or (B, H, W).
            target (Tensor): Labels 0/1 (and ``ignore_index``), (B, H, W).

        Returns:
            Tensor: Scalar loss.
        """
        logits, t, valid = binary_target_and_mask(pred, target, ignore_index)
        pos = (t * valid).sum() + 1e-10
        neg = ((1 - t) * valid).sum()
        w_pos = neg / (pos + neg)
        w_neg = pos / (pos + neg)
        # log-sigmoid forms are the numerically stable log s and log(1 - s)
        loss = -(w_pos * t * F.logsigmoid(logits) +
                 w_neg * (1 - t) * F.logsigmoid(-logits))
        return self.loss_weight * (loss * valid).sum() / valid.sum().clamp(
            min=1)

    @property
    def loss_name(self) -> str:
        return self._loss_name
