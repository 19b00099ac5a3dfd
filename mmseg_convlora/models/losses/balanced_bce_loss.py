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

    Images with one class only (a shadow-free image at the reference batch
    size 1, or an all-foreground one): the formula would give that class
    the weight ~0 (``P = 1e-10``), i.e. no training signal at all, so the
    false positives of shadow-free images would never be penalised. Such
    batches use the weight 0.5 for every pixel instead (what each class
    gets in a half-shadow image), i.e. half the plain BCE.

    Args:
        loss_weight (float): Multiplier of the loss.
        loss_name (str): Name of the loss in the log.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_bbce'):
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

    @property
    def loss_name(self) -> str:
        return self._loss_name
