from typing import Tuple

import torch
from torch import Tensor


def binary_target_and_mask(pred: Tensor, target: Tensor,
                           ignore_index: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Bring binary logits and labels into one float32 (B, 1, H, W) layout.

    Args:
        pred (Tensor): Logits, (B, 1, H, W) or (B, H, W).
        target (Tensor): Labels in {0, 1, ignore_index}, (B, H, W) or
            (B, 1, H, W).
        ignore_index (int): Label of pixels to exclude.

    Returns:
        tuple[Tensor]: logits, 0/1 target (ignored pixels set to 0) and the
        0/1 validity mask, each (B, 1, H, W) float32.

    Raises:
        ValueError: Labels other than 0, 1 and ``ignore_index``, which
            would mean the masks were not converted to 0/1.
    """
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
