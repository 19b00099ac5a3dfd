"""Hungarian-matched mask-classification loss (Mask2Former) with ignored
pixels weighted out of the sampled points; see docs/methods.md."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmseg.registry import MODELS
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmseg_convlora.compat import point_sample


def sem_seg_to_segments(gt_sem_seg: Tensor,
                        num_classes: int,
                        ignore_index: int = 255) -> Tuple[Tensor, Tensor]:
    """Class ids (M,) and bool masks (M, H, W) of the classes present in a
    (H, W) or (1, H, W) label map (``ignore_index`` is never a segment)."""
    if gt_sem_seg.dim() == 3 and gt_sem_seg.shape[0] == 1:
        gt_sem_seg = gt_sem_seg[0]
    if gt_sem_seg.dim() != 2:
        raise ValueError('gt_sem_seg must have shape (H, W), got '
                         f'{tuple(gt_sem_seg.shape)}')
    values = torch.unique(gt_sem_seg)
    values = values[values != ignore_index]
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.numel() > 0:
        raise ValueError(
            f'gt_sem_seg contains labels {bad.tolist()} that are neither a '
            f'class id in [0, {num_classes}) nor ignore_index={ignore_index}.')
    labels = values.long()
    masks = gt_sem_seg.unsqueeze(0) == labels.view(-1, 1, 1)
    return labels, masks


def point_weights(valid: Tensor,
                  point_coords: Tensor,
                  owner: Optional[Tensor] = None) -> Tensor:
    """(R, P) share of valid pixels at (R, P, 2) points, 1 away from ignored
    ones; ``valid`` (R or 1, 1, H, W), or (V, 1, H, W) with the (R,)
    ``owner`` index of each row's map (each map sampled once)."""
    valid = valid.to(point_coords.dtype)
    maps = torch.cat([valid, 1 - valid], dim=1)
    num_rows, num_points = point_coords.shape[:2]
    if owner is None and maps.shape[0] == num_rows:
        sampled = point_sample(
            maps, point_coords, align_corners=False, padding_mode='border')
    else:
        if owner is None:
            if maps.shape[0] != 1:
                raise ValueError(
                    f'{maps.shape[0]} maps for {num_rows} rows of points: '
                    'give one map per row, one shared map, or owner.')
            owner = point_coords.new_zeros(num_rows, dtype=torch.long)
        sampled = point_coords.new_empty(num_rows, 2, num_points)
        for v in range(maps.shape[0]):  # per image, never per mask or class
            rows = (owner == v).nonzero()[:, 0]
            if rows.numel() == 0:
                continue
            part = point_sample(
                maps[v:v + 1],
                point_coords[rows].reshape(1, -1, 2),
                align_corners=False,
                padding_mode='border')
            sampled[rows] = part.view(2, rows.numel(),
                                      num_points).transpose(0, 1)
    valid_share, ignored_share = sampled[:, 0], sampled[:, 1]
    # exactly 1 where nothing is ignored: the bilinear weights' sum may round
    # to just below 1
    return torch.where(ignored_share > 0, valid_share,
                       torch.ones_like(valid_share))


def sample_targets(gt_masks: Tensor,
                   valid: Tensor,
                   point_coords: Tensor,
                   owner: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """(R, P) GT values of (R, H, W) ``gt_masks`` and the point weights."""
    num = gt_masks.shape[0]
    valid = valid.to(point_coords.dtype)
    gt = gt_masks.to(point_coords.dtype) * (
        valid if owner is None else valid[owner])
    if point_coords.shape[0] == 1 and owner is None and valid.shape[0] == 1:
        # One set of points and one validity map for every mask: sample
        # the masks as the channels of one image, the weights once.
        gt_s = point_sample(gt[None], point_coords, align_corners=False)[0]
        weights = point_weights(valid[:, None], point_coords).expand(num, -1)
    else:
        if point_coords.shape[0] != num:
            point_coords = point_coords.expand(num, -1, -1)
        gt_s = point_sample(
            gt[:, None], point_coords, align_corners=False)[:, 0]
        weights = point_weights(valid[:, None], point_coords, owner)
    # Renormalise only where something is ignored, so that targets are
    # bit-identical to the plain sample elsewhere.
    renormalised = torch.where(weights > 0, gt_s / weights.clamp(min=1e-6),
                               torch.zeros_like(gt_s)).clamp(0, 1)
    targets = torch.where(weights < 1, renormalised, gt_s)
    return targets, weights


def _pairwise_sigmoid_ce(logits: Tensor, targets: Tensor,
                         weights: Tensor) -> Tensor:
    """(N, M) weighted-mean sigmoid BCE of (N, P) logits vs (M, P) targets."""
    pos = F.binary_cross_entropy_with_logits(
        logits, torch.ones_like(logits), reduction='none') * weights
    neg = F.binary_cross_entropy_with_logits(
        logits, torch.zeros_like(logits), reduction='none') * weights
    cost = pos @ targets.t() + neg @ (1 - targets).t()
    return cost / weights.sum().clamp(min=1e-6)


def _pairwise_dice(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """(N, M) dice cost (Mask2Former's ``batch_dice_loss``), point-weighted."""
    probs = logits.sigmoid() * weights
    wt = targets * weights
    numerator = 2 * probs @ targets.t()
    denominator = probs.sum(-1)[:, None] + wt.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


@torch.no_grad()
def hungarian_match(cls_logits: Tensor,
                    mask_logits: Tensor,
                    gt_labels: Tensor,
                    gt_masks: Tensor,
                    valid: Optional[Tensor] = None,
                    cost_class: float = 2.0,
                    cost_mask: float = 5.0,
                    cost_dice: float = 5.0,
                    num_points: int = 12544) -> Tuple[Tensor, Tensor]:
    """(min(N, M),) ``pred_idx``, ``gt_idx`` matching one image's class
    (N, K + 1) and mask (N, h, w) logits to GT labels (M,) and masks (M, H,
    W); ``valid`` (H, W): non-ignored pixels (default all)."""
    device = cls_logits.device
    if gt_labels.numel() == 0:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    probs = cls_logits.float().softmax(-1)
    cost = -probs[:, gt_labels] * cost_class

    if valid is None:
        valid = torch.ones(gt_masks.shape[-2:], device=gt_masks.device)
    point_coords = torch.rand(1, num_points, 2, device=device)
    targets, weights = sample_targets(gt_masks, valid[None], point_coords)
    pred = point_sample(
        mask_logits.float()[:, None],
        point_coords.expand(mask_logits.shape[0], -1, -1),
        align_corners=False)[:, 0]
    cost = cost + cost_mask * _pairwise_sigmoid_ce(pred, targets, weights[0])
    cost = cost + cost_dice * _pairwise_dice(pred, targets, weights[0])

    cost = cost.cpu()
    if not torch.isfinite(cost).all():
        raise ValueError(
            'Hungarian matching cost is not finite; the class or mask '
            'logits contain NaN/Inf (diverged training?).')
    pred_idx, gt_idx = linear_sum_assignment(cost.numpy())
    return (torch.as_tensor(pred_idx, dtype=torch.long, device=device),
            torch.as_tensor(gt_idx, dtype=torch.long, device=device))


@torch.no_grad()
def get_uncertain_point_coords_with_randomness(
        mask_logits: Tensor,
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
        valid: Optional[Tensor] = None,
        owner: Optional[Tensor] = None) -> Tensor:
    """detectron2's uncertain (R, P, 2) points; zero-weight ones never."""
    assert oversample_ratio >= 1
    assert 0 <= importance_sample_ratio <= 1
    num_rois = mask_logits.shape[0]
    device = mask_logits.device
    num_sampled = int(num_points * oversample_ratio)
    point_coords = torch.rand(num_rois, num_sampled, 2, device=device)
    # Uncertainty of the *interpolated* logit, not of the coarse grid: a point
    # between logits -1 and 1 is maximally uncertain (see detectron2).
    point_logits = point_sample(
        mask_logits.float(), point_coords, align_corners=False)[:, 0]
    uncertainty = -point_logits.abs()
    if valid is not None:
        touches_valid = point_weights(valid, point_coords, owner) > 0
        uncertainty = uncertainty.masked_fill(~touches_valid, -float('inf'))
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(uncertainty, k=num_uncertain, dim=1)[1]
    point_coords = torch.gather(point_coords, 1, idx[...,
                                                     None].expand(-1, -1, 2))
    if num_random > 0:
        point_coords = torch.cat(
            [point_coords,
             torch.rand(num_rois, num_random, 2, device=device)],
            dim=1)
    return point_coords


@MODELS.register_module()
class MaskClassificationLoss(nn.Module):
    """Hungarian-matched mask-classification loss (Mask2Former).

    Args:
        num_classes (int): K; the logits have K + 1, the last "no object".
        ignore_index (int): Label left out of segments and mask losses.
        loss_weight_cls, loss_weight_mask, loss_weight_dice (float): Weights
            of the cross entropy, sigmoid BCE and dice losses. Default 1.
        cost_class, cost_mask, cost_dice (float): Matching weights of the
            class, BCE and dice costs. Default 2, 5, 5.
        no_object_weight (float): CE weight of "no object". Default 0.1.
        num_points (int): Points per mask. Default 12544.
        oversample_ratio (float): Candidate oversampling. Default 3.
        importance_sample_ratio (float): Uncertain share. Default 0.75.
    """

    def __init__(self,
                 num_classes: int,
                 ignore_index: int = 255,
                 loss_weight_cls: float = 1.0,
                 loss_weight_mask: float = 1.0,
                 loss_weight_dice: float = 1.0,
                 cost_class: float = 2.0,
                 cost_mask: float = 5.0,
                 cost_dice: float = 5.0,
                 no_object_weight: float = 0.1,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.loss_weight_cls = loss_weight_cls
        self.loss_weight_mask = loss_weight_mask
        self.loss_weight_dice = loss_weight_dice
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.no_object_weight = no_object_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = no_object_weight
        # Not persistent: a derived constant, so it stays out of checkpoints
        # (no missing/unexpected keys when the loss config changes).
        self.register_buffer('class_weight', class_weight, persistent=False)

    def forward(self, cls_logits: Tensor, mask_logits: Tensor,
                gt_sem_segs: Tensor) -> Dict[str, Tensor]:
        """Weighted ``loss_cls``, ``loss_mask``, ``loss_dice`` of logits
        (B, N, K + 1), (B, N, h, w) and labels (B, H, W) or (B, 1, H, W)."""
        batch_size, num_queries = cls_logits.shape[:2]
        if cls_logits.shape[-1] != self.num_classes + 1:
            raise ValueError(
                f'cls_logits has {cls_logits.shape[-1]} channels, expected '
                f'num_classes + 1 = {self.num_classes + 1}')
        if mask_logits.shape[:2] != (batch_size, num_queries) or \
                gt_sem_segs.shape[0] != batch_size:
            raise ValueError('Inconsistent shapes: cls_logits '
                             f'{tuple(cls_logits.shape)}, mask_logits '
                             f'{tuple(mask_logits.shape)}, gt_sem_segs '
                             f'{tuple(gt_sem_segs.shape)}')

        assigned = self.assign(cls_logits, mask_logits, gt_sem_segs)
        matched_logits, matched_gts, owner = [], [], []
        for i, (pred_idx, gt_idx) in enumerate(
                zip(assigned['pred_inds'], assigned['gt_inds'])):
            matched_logits.append(mask_logits[i, pred_idx])
            matched_gts.append(assigned['gt_masks'][i][gt_idx])
            owner.append(gt_idx.new_full((gt_idx.numel(), ), i))
        num_gt_masks = sum(labels.numel() for labels in assigned['gt_labels'])

        loss_cls = F.cross_entropy(
            cls_logits.float().transpose(1, 2),
            assigned['cls_targets'],
            weight=self.class_weight.to(cls_logits.device))

        # Mask2Former: average over the GT masks of the whole (global) batch,
        # so every GT mask weighs the same whatever the per-GPU split.
        num_masks = torch.tensor([float(num_gt_masks)],
                                 device=cls_logits.device)
        all_reduce(num_masks)
        num_masks = torch.clamp(num_masks / get_world_size(), min=1).item()

        owner = torch.cat(owner)
        if owner.numel():
            # one validity map per image, not a copy per matched mask
            loss_mask, loss_dice = self._mask_losses(
                torch.cat(matched_logits), torch.cat(matched_gts),
                torch.stack(assigned['valid']), num_masks, owner)
        else:
            # Zero that still depends on mask_logits, so every parameter gets
            # a (zero) gradient and DDP does not see unused parameters.
            loss_mask = loss_dice = mask_logits.sum() * 0.0

        return dict(
            loss_cls=loss_cls * self.loss_weight_cls,
            loss_mask=loss_mask * self.loss_weight_mask,
            loss_dice=loss_dice * self.loss_weight_dice)

    @torch.no_grad()
    def assign(self, cls_logits: Tensor, mask_logits: Tensor,
               gt_sem_segs: Tensor) -> dict:
        """``cls_targets`` (B, N) and per-image matches and GT segments."""
        if gt_sem_segs.dim() == 4:
            gt_sem_segs = gt_sem_segs[:, 0]
        batch_size, num_queries = cls_logits.shape[:2]
        cls_targets = torch.full((batch_size, num_queries),
                                 self.num_classes,
                                 dtype=torch.long,
                                 device=cls_logits.device)
        keys = ('pred_inds', 'gt_inds', 'gt_labels', 'gt_masks', 'valid')
        out = dict(cls_targets=cls_targets, **{key: [] for key in keys})
        for i in range(batch_size):
            labels, masks = sem_seg_to_segments(gt_sem_segs[i],
                                                self.num_classes,
                                                self.ignore_index)
            valid = gt_sem_segs[i] != self.ignore_index
            pred_idx, gt_idx = hungarian_match(cls_logits[i], mask_logits[i],
                                               labels, masks, valid,
                                               self.cost_class, self.cost_mask,
                                               self.cost_dice, self.num_points)
            cls_targets[i, pred_idx] = labels[gt_idx].to(cls_targets.device)
            for key, value in zip(keys,
                                  (pred_idx, gt_idx, labels, masks, valid)):
                out[key].append(value)
        return out

    def _mask_losses(self,
                     logits: Tensor,
                     gt_masks: Tensor,
                     valid: Tensor,
                     num_masks: float,
                     owner: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Unweighted BCE and dice of matched logits at sampled points."""
        logits = logits.float()[:, None]
        with torch.no_grad():
            point_coords = get_uncertain_point_coords_with_randomness(
                logits, self.num_points, self.oversample_ratio,
                self.importance_sample_ratio, valid[:, None], owner)
            targets, weights = sample_targets(gt_masks, valid, point_coords,
                                              owner)
        point_logits = point_sample(
            logits, point_coords, align_corners=False)[:, 0]

        bce = F.binary_cross_entropy_with_logits(
            point_logits, targets, reduction='none')
        # weighted mean over each mask's valid points; clamp(min=1) keeps a
        # mask with hardly any valid sampled point from being amplified
        loss_mask = ((bce * weights).sum(1) /
                     weights.sum(1).clamp(min=1)).sum() / num_masks

        probs = point_logits.sigmoid() * weights
        numerator = 2 * (probs * targets).sum(1)
        denominator = probs.sum(1) + (targets * weights).sum(1)
        loss_dice = (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks
        return loss_mask, loss_dice

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index}, '
                f'weights(cls/mask/dice)={self.loss_weight_cls}/'
                f'{self.loss_weight_mask}/{self.loss_weight_dice}, '
                f'costs(cls/mask/dice)={self.cost_class}/{self.cost_mask}/'
                f'{self.cost_dice}, no_object_weight={self.no_object_weight},'
                f' num_points={self.num_points}')
