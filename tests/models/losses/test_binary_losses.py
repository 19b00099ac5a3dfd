"""StructureLoss and BalancedBCELoss against values computed by hand."""
import math

import numpy as np
import pytest
import torch

from mmseg_convlora.models.losses import BalancedBCELoss, StructureLoss


def sig(v):
    return 1 / (1 + math.exp(-v))


def bce(x, t):
    s = sig(x)
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


LOGITS = [[2.0, -1.0, 0.5, -3.0], [1.0, 0.0, -2.0, 4.0],
          [-0.5, 3.0, 1.5, -1.5], [0.25, -0.25, 2.5, -4.0]]
TARGET = [[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 0, 1, 0]]


def structure_by_hand(logits, target):
    # On a 4x4 image the 31x31 window (padding 15, zero padding counted)
    # covers every pixel for every position: avg = sum(t) / 961.
    avg = sum(map(sum, target)) / 961
    inter = union = 0.0
    bce_sum = 0.0
    for row_x, row_t in zip(logits, target):
        for x, t in zip(row_x, row_t):
            w = 1 + 5 * abs(avg - t)
            inter += sig(x) * t * w
            union += (sig(x) + t) * w
            bce_sum += bce(x, t)
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return bce_sum / 16, wiou


def test_structure_loss_by_hand():
    x = torch.tensor(LOGITS).view(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4)
    mean_bce, wiou = structure_by_hand(LOGITS, TARGET)
    assert StructureLoss()(x, t).item() == pytest.approx(
        mean_bce + wiou, rel=1e-5)


def test_structure_loss_batch_averages_wiou_and_pools_bce():
    x = torch.tensor([LOGITS, [[-v for v in r] for r in LOGITS]]).unsqueeze(1)
    t = torch.tensor([TARGET, TARGET])
    b1, w1 = structure_by_hand(LOGITS, TARGET)
    b2, w2 = structure_by_hand([[-v for v in r] for r in LOGITS], TARGET)
    expected = (b1 + b2) / 2 + (w1 + w2) / 2
    assert StructureLoss()(x, t).item() == pytest.approx(expected, rel=1e-5)


def test_structure_loss_weighted_bce_option():
    x = torch.tensor(LOGITS).view(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4)
    avg = sum(map(sum, TARGET)) / 961
    num = den = 0.0
    for row_x, row_t in zip(LOGITS, TARGET):
        for v, tt in zip(row_x, row_t):
            w = 1 + 5 * abs(avg - tt)
            num += w * bce(v, tt)
            den += w
    _, wiou = structure_by_hand(LOGITS, TARGET)
    loss = StructureLoss(weighted_bce=True)(x, t).item()
    assert loss == pytest.approx(num / den + wiou, rel=1e-5)


def boundary_weights_by_hand(target, boundary_weight=5):
    """w = 1 + 5 |mean of t over the 31x31 window - t|, the window's part
    outside the image counted as zeros (divisor always 961)."""
    h, w = target.shape
    out = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            window = target[max(i - 15, 0):i + 16, max(j - 15, 0):j + 16]
            out[i, j] = 1 + boundary_weight * abs(window.sum() / 961 -
                                                  target[i, j])
    return out


def test_structure_loss_boundary_weights_on_a_large_image():
    # 48x40: the 31x31 window covers only part of the image, so the weight
    # depends on the distance to the object's boundary (up to 1 + 5 (1 -
    # 121/961) inside a thin part, 1 far from the object).
    rng = np.random.default_rng(0)
    t = np.zeros((48, 40))
    t[10:30, 8:22] = 1
    t[30:34, 30:32] = 1
    x = rng.normal(0, 2, t.shape)
    w = boundary_weights_by_hand(t)
    assert w.min() == 1 and w.max() > 5 and len(np.unique(w)) > 100
    s = 1 / (1 + np.exp(-x))
    bce = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    inter = (s * t * w).sum()
    wiou = 1 - (inter + 1) / (((s + t) * w).sum() - inter + 1)
    # the loss computes in float32: agreement to float32 rounding
    xt = torch.tensor(x, dtype=torch.float32).view(1, 1, 48, 40)
    tt = torch.tensor(t, dtype=torch.long).view(1, 48, 40)
    assert StructureLoss()(xt, tt).item() == pytest.approx(
        bce.mean() + wiou, rel=1e-6)
    assert StructureLoss(weighted_bce=True)(xt, tt).item() == pytest.approx(
        (w * bce).sum() / w.sum() + wiou, rel=1e-6)


def test_balanced_bce_by_hand():
    x = torch.tensor(LOGITS).view(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4)
    pos = sum(map(sum, TARGET)) + 1e-10
    neg = 16 - sum(map(sum, TARGET))
    total = 0.0
    for row_x, row_t in zip(LOGITS, TARGET):
        for v, tt in zip(row_x, row_t):
            total += -(neg / (pos + neg)) * tt * math.log(
                sig(v)) - (pos / (pos + neg)) * (1 - tt) * math.log(1 - sig(v))
    assert BalancedBCELoss()(x, t).item() == pytest.approx(
        total / 16, rel=1e-5)


def test_ignore_index_is_excluded():
    x = torch.tensor(LOGITS).view(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4)
    t_ign = t.clone()
    t_ign[0, 0, :] = 255
    # a wildly wrong logit on an ignored pixel must not matter
    x_bad = x.clone()
    x_bad[0, 0, 0, :] = -50.0
    for loss in (BalancedBCELoss(), StructureLoss()):
        assert loss(x, t_ign).item() == pytest.approx(
            loss(x_bad, t_ign).item(), rel=1e-6)
    # and balanced BCE equals the hand value over the 12 valid pixels
    rows_x, rows_t = LOGITS[1:], TARGET[1:]
    pos = sum(map(sum, rows_t)) + 1e-10
    neg = 12 - sum(map(sum, rows_t))
    total = sum(-(neg / (pos + neg)) * tt * math.log(sig(v)) -
                (pos / (pos + neg)) * (1 - tt) * math.log(1 - sig(v))
                for rx, rt in zip(rows_x, rows_t) for v, tt in zip(rx, rt))
    assert BalancedBCELoss()(x, t_ign).item() == pytest.approx(
        total / 12, rel=1e-5)


def test_raw_255_foreground_cannot_slip_through_as_labels():
    x = torch.zeros(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4) * 7  # not 0/1
    with pytest.raises(ValueError, match='0/1 labels'):
        StructureLoss()(x, t)


def test_structure_loss_without_boundary_weight_is_bce_plus_iou():
    x = torch.tensor(LOGITS).view(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4)
    inter = union = bce_sum = 0.0
    for row_x, row_t in zip(LOGITS, TARGET):
        for v, tt in zip(row_x, row_t):
            inter += sig(v) * tt
            union += sig(v) + tt
            bce_sum += bce(v, tt)
    expected = bce_sum / 16 + 1 - (inter + 1) / (union - inter + 1)
    loss = StructureLoss(boundary_weight=0.0)(x, t).item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_structure_loss_iou_smoothing_on_an_empty_ground_truth():
    """Empty GT, a confident background prediction (s = 0.02 on 4 pixels,
    sum(s) = 0.08): BCE = -log(0.98); the IoU term is
    ``1 - e / (0.08 + e)``: 0.0741 with PraNet's e = 1, 0.9877 with the CAD
    reference's e = 1e-3."""
    x = torch.full((1, 1, 2, 2), math.log(0.02 / 0.98))
    t = torch.zeros(1, 2, 2, dtype=torch.long)
    mean_bce = -math.log(0.98)
    for smooth, iou in ((1.0, 1 - 1 / 1.08), (1e-3, 1 - 1e-3 / 0.081)):
        loss = StructureLoss(boundary_weight=0.0, iou_smooth=smooth)(x, t)
        assert loss.item() == pytest.approx(mean_bce + iou, rel=1e-5)
    assert 1 - 1 / 1.08 == pytest.approx(0.0741, abs=1e-4)
    assert 1 - 1e-3 / 0.081 == pytest.approx(0.9877, abs=1e-4)
    # the default is PraNet's e = 1
    default = StructureLoss(boundary_weight=0.0)(x, t).item()
    assert default == pytest.approx(mean_bce + 1 - 1 / 1.08, rel=1e-5)
    with pytest.raises(ValueError, match='iou_smooth'):
        StructureLoss(iou_smooth=0)


def test_structure_loss_iou_smoothing_with_boundary_weights():
    x = torch.tensor(LOGITS).view(1, 1, 4, 4)
    t = torch.tensor(TARGET).view(1, 4, 4)
    avg = sum(map(sum, TARGET)) / 961
    inter = union = bce_sum = 0.0
    for row_x, row_t in zip(LOGITS, TARGET):
        for v, tt in zip(row_x, row_t):
            w = 1 + 5 * abs(avg - tt)
            inter += sig(v) * tt * w
            union += (sig(v) + tt) * w
            bce_sum += bce(v, tt)
    e = 1e-3
    expected = bce_sum / 16 + 1 - (inter + e) / (union - inter + e)
    loss = StructureLoss(iou_smooth=e)(x, t).item()
    assert loss == pytest.approx(expected, rel=1e-5)
