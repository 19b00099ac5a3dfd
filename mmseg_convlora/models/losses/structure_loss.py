"""PraNet's structure loss, as the SAM fine-tuning papers train with it."""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .utils import binary_target_and_mask


@MODELS.register_module()
class StructureLoss(torch.nn.Module):
    """Binary cross entropy + boundary-weighted IoU (Fan et al., PraNet).

    Per image, with ``s = sigmoid(x)`` and a 0/1 target ``t``::

        w    = 1 + 5 * |avg_pool(t, 31, stride 1, pad 15) - t|
        wIoU = 1 - (sum(s t w) + e) / (sum((s + t) w) - sum(s t w) + e)

    and the loss is ``BCE + mean over images of wIoU``.

    By default BCE is the plain mean over all pixels of the batch: this is
    what the Conv-LoRA paper describes and what the reference code computes
    (PraNet's ``reduce='none'`` argument is read by PyTorch as "reduce",
    which cancels the boundary weight). ``weighted_bce=True`` gives PraNet's
    intent instead: ``sum(w * bce) / sum(w)`` per image, averaged.

    Pixels equal to ``ignore_index`` count as background in the pooled
    boundary weight and are excluded from both terms.

    The smoothing ``e`` is 1 in PraNet's code. ``boundary_weight=0`` gives
    plain BCE + soft IoU (``w = 1``), the loss the CAD paper trains with; its
    reference code smooths the IoU with ``e = 1e-3`` (``iou_smooth=1e-3``),
    which keeps penalising a little foreground probability left on an image
    whose ground truth is empty (with ``e = 1`` that costs almost nothing).

    Args:
        weighted_bce (bool): Use the boundary-weighted BCE. Default False.
        boundary_weight (float): The 5 in ``w``. Default 5.
        iou_smooth (float): The smoothing ``e`` of the IoU term, > 0.
            Default 1 (PraNet).
        loss_weight (float): Multiplier of the loss.
        loss_name (str): Name of the loss in the log.
    """

    def __init__(self,
                 weighted_bce: bool = False,
                 boundary_weight: float = 5.0,
                 iou_smooth: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_structure'):
        super().__init__()
        if not iou_smooth > 0:
            raise ValueError(
                f'StructureLoss iou_smooth must be > 0, got {iou_smooth!r} '
                '(it keeps the IoU defined on empty masks).')
        self.weighted_bce = weighted_bce
        self.boundary_weight = boundary_weight
        self.iou_smooth = iou_smooth
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

    @property
    def loss_name(self) -> str:
        return self._loss_name
