from typing import Tuple

import torch
from torch import Tensor


def binary_target_and_mask(pred: Tensor, target: Tensor,
                           ignore_index: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(B, 1, H, W) float logits, 0/1 target (0 where ignored) and mask."""
    if pred.dim() == 3:
        pred = pred.unsqueeze(1)
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if pred.shape[1] != 1:
        raise ValueError(f'Binary losses need one output channel, got '
                         f'{pred.shape[1]}.')
    valid = target != ignore_index
    t = torch.where(valid, target, torch.zeros_like(target))
    if bool((t > 1).any()) or bool((t < 0).any()):
        raise ValueError(
            'Binary losses need 0/1 labels (plus the ignore index '
            f'{ignore_index}), got values {torch.unique(t).tolist()[:10]}. '
            'Load masks with LoadBinaryAnnotations, which maps 0/255 masks '
            'to 0/1.')
    return pred.float(), t.float(), valid.float()


class BinaryLoss(torch.nn.Module):
    """Base of the scalar losses of logits (B, 1, H, W) or (B, H, W) and 0/1
    labels: :meth:`compute` gets :func:`binary_target_and_mask`'s tensors.
    """

    def __init__(self, loss_weight: float, loss_name: str):
        super().__init__()
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight=None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        return self.compute(
            *binary_target_and_mask(pred, target, ignore_index))
