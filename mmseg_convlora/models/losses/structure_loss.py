"""PraNet's structure loss, as the SAM fine-tuning papers use it."""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .utils import BinaryLoss


@MODELS.register_module()
class StructureLoss(BinaryLoss):
    """BCE + boundary-weighted IoU (Fan et al., PraNet).

    ``w = 1 + boundary_weight * |avg_pool(t, 31) - t|``; the loss is
    ``BCE + mean(weighted IoU)``, ignored pixels left out.

    Args:
        weighted_bce (bool): Weight the BCE by ``w``. Default False.
        boundary_weight (float): The 5 in ``w``; 0 gives BCE + soft IoU.
            Default 5.
        iou_smooth (float): The smoothing ``e`` (> 0). Default 1.
        loss_weight (float): Multiplier of the loss. Default 1.
        loss_name (str): Name of the loss in the log.
            Default 'loss_structure'.
    """

    def __init__(self,
                 weighted_bce: bool = False,
                 boundary_weight: float = 5.0,
                 iou_smooth: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_structure'):
        super().__init__(loss_weight, loss_name)
        if not iou_smooth > 0:
            raise ValueError(
                f'StructureLoss iou_smooth must be > 0, got {iou_smooth!r} '
                '(it keeps the IoU defined on empty masks).')
        self.weighted_bce = weighted_bce
        self.boundary_weight = boundary_weight
        self.iou_smooth = iou_smooth

    def compute(self, logits: Tensor, t: Tensor, valid: Tensor) -> Tensor:
        w = 1 + self.boundary_weight * torch.abs(
            F.avg_pool2d(t, kernel_size=31, stride=1, padding=15) - t)
        w = w * valid
        bce = F.binary_cross_entropy_with_logits(logits, t, reduction='none')
        if self.weighted_bce:
            bce = ((w * bce).sum((2, 3)) / w.sum(
                (2, 3)).clamp(min=1e-8)).mean()
        else:
            bce = (bce * valid).sum() / valid.sum().clamp(min=1)
        s = torch.sigmoid(logits)
        inter = (s * t * w).sum((2, 3))
        union = ((s + t) * w).sum((2, 3))
        smooth = self.iou_smooth
        wiou = 1 - (inter + smooth) / (union - inter + smooth)
        return self.loss_weight * (bce + wiou.mean())
