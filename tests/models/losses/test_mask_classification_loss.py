import math

import pytest
import torch

from mmseg_convlora.compat import point_sample
from mmseg_convlora.models.losses import mask_classification_loss as mcl
from mmseg_convlora.models.losses.mask_classification_loss import (
    MaskClassificationLoss, get_uncertain_point_coords_with_randomness,
    hungarian_match, sem_seg_to_segments)

K = 3
BIG = 20.0


def _gt_map(size=32):
    """Left half class 0, top-right class 2, bottom-right class 1."""
    gt = torch.zeros(size, size, dtype=torch.long)
    gt[:size // 2, size // 2:] = 2
    gt[size // 2:, size // 2:] = 1
    return gt


def _perfect_preds(gt, query_for_class, num_queries, mask_size=None):
    """Class logits one-hot with margin BIG, masks = GT as +-BIG logits.

    Queries not listed in ``query_for_class`` predict "no object" strongly
    and an all-negative mask.
    """
    cls = torch.zeros(num_queries, K + 1)
    cls[:, K] = BIG
    masks = torch.full((num_queries, ) + gt.shape, -BIG)
    for c, q in query_for_class.items():
        cls[q] = 0
        cls[q, c] = BIG
        masks[q] = torch.where(gt == c, BIG, -BIG)
    if mask_size is not None:
        masks = torch.nn.functional.interpolate(
            masks[None], size=mask_size, mode='bilinear',
            align_corners=False)[0]
    return cls, masks


def _build(**kwargs):
    from mmseg.registry import MODELS
    cfg = dict(type='MaskClassificationLoss', num_classes=K, num_points=256)
    cfg.update(kwargs)
    return MODELS.build(cfg)


# --------------------------------------------------------------- segments
def test_sem_seg_to_segments_skips_ignore():
    gt = _gt_map(8)
    gt[0, 0] = 255
    gt[:, :2] = 255  # class 0 still present in columns 2..3
    labels, masks = sem_seg_to_segments(gt, K, 255)
    assert labels.tolist() == [0, 1, 2]
    assert masks.shape == (3, 8, 8) and masks.dtype == torch.bool
    for j, c in enumerate(labels.tolist()):
        assert torch.equal(masks[j], gt == c)
    assert not masks.any(0)[gt == 255].any()


def test_sem_seg_to_segments_all_ignore_and_bad_label():
    labels, masks = sem_seg_to_segments(
        torch.full((4, 5), 255, dtype=torch.long), K, 255)
    assert labels.numel() == 0 and masks.shape == (0, 4, 5)
    with pytest.raises(ValueError, match=r'\[7\]'):
        sem_seg_to_segments(torch.full((4, 4), 7, dtype=torch.long), K, 255)


# --------------------------------------------------------------- matching
def _matching_case():
    gt = _gt_map(16)
    labels, masks = sem_seg_to_segments(gt, K, 255)
    # class 2 -> query 0, query 1 junk, class 0 -> query 2, class 1 -> q 3
    cls, mask_logits = _perfect_preds(gt, {2: 0, 0: 2, 1: 3}, 4, (8, 8))
    return cls, mask_logits, labels, masks


def test_hungarian_match_known_assignment():
    torch.manual_seed(0)
    cls, mask_logits, labels, masks = _matching_case()
    pred_idx, gt_idx = hungarian_match(
        cls, mask_logits, labels, masks, num_points=128)
    assert pred_idx.tolist() == [0, 2, 3]
    assert labels[gt_idx].tolist() == [2, 0, 1]


def test_hungarian_match_mask_cost_decides_when_classes_are_ambiguous():
    torch.manual_seed(0)
    cls, mask_logits, labels, masks = _matching_case()
    cls = torch.zeros_like(cls)  # uninformative classes: masks must decide
    pred_idx, gt_idx = hungarian_match(
        cls, mask_logits, labels, masks, num_points=128)
    assert dict(zip(pred_idx.tolist(), labels[gt_idx].tolist())) == {
        0: 2,
        2: 0,
        3: 1
    }


def test_hungarian_match_permutation_equivariant():
    cls, mask_logits, labels, masks = _matching_case()
    torch.manual_seed(0)
    pred_idx, gt_idx = hungarian_match(
        cls, mask_logits, labels, masks, num_points=128)
    ref = dict(zip(gt_idx.tolist(), pred_idx.tolist()))
    perm = torch.tensor([3, 0, 1, 2])  # new query q is old query perm[q]
    torch.manual_seed(0)
    pred_p, gt_p = hungarian_match(
        cls[perm], mask_logits[perm], labels, masks, num_points=128)
    got = dict(zip(gt_p.tolist(), perm[pred_p].tolist()))
    assert got == ref


def test_hungarian_match_no_gt_and_more_gts_than_queries():
    cls, mask_logits, labels, masks = _matching_case()
    p, g = hungarian_match(cls, mask_logits, labels[:0], masks[:0])
    assert p.numel() == 0 and g.numel() == 0
    torch.manual_seed(0)
    p, g = hungarian_match(
        cls[2:4], mask_logits[2:4], labels, masks, num_points=64)
    assert p.tolist() == [0, 1] and labels[g].tolist() == [0, 1]


def test_hungarian_match_ignores_ignored_pixels():
    # Query 0's mask covers class 0 plus a large ignored area; query 1's
    # covers class 0 plus a large *valid* background area. Only query 1 is
    # penalised for the extra area, so query 0 must win.
    gt = torch.full((16, 16), 1, dtype=torch.long)
    gt[:, :4] = 0
    gt[:, 4:12] = 255
    labels, masks = sem_seg_to_segments(gt, K, 255)
    cls = torch.zeros(2, K + 1)
    m0 = torch.where(gt != 1, BIG, -BIG).float()  # class 0 + ignored
    m1 = torch.where(torch.arange(16)[None, :].expand(16, 16) < 4, BIG,
                     -BIG).float()
    m1[:8, 12:] = BIG  # class 0 + part of class 1
    torch.manual_seed(0)
    p, g = hungarian_match(
        cls,
        torch.stack([m0, m1]),
        labels[:1],
        masks[:1],
        valid=gt != 255,
        num_points=512)
    assert p.tolist() == [0]


def _class_versus_mask_case():
    """One GT segment (class 0) covering the whole image, two queries.

    Query A has the better class probability, query B the better mask; with
    P points of target 1 and a constant mask logit x the mask cost is, from
    the written-out formulas,
    ``5 * softplus(-x) + 5 * (1 - (2 s P + 1) / (s P + P + 1))``,
    s = sigmoid(x). The class advantage of A is set to 1.5 / 2 of B's mask
    advantage: a class weight of 2 picks A, a weight of 1 picks B.
    """
    num_points, x_a, x_b = 4096, 0.0, 0.1

    def mask_cost(x):
        s = torch.sigmoid(torch.tensor(x)).item()
        dice = 1 - (2 * s * num_points + 1) / (s * num_points + num_points + 1)
        return 5 * math.log1p(math.exp(-x)) + 5 * dice

    delta = mask_cost(x_a) - mask_cost(x_b)
    p_b = 0.2
    p_a = p_b + delta * 0.75
    assert 0 < p_a < 1
    probs = torch.tensor([[p_a, (1 - p_a) / 2, 0, (1 - p_a) / 2],
                          [p_b, (1 - p_b) / 2, 0, (1 - p_b) / 2]])
    cls = probs.clamp(min=1e-12).log()
    masks = torch.stack([torch.full((64, 64), x_a), torch.full((64, 64), x_b)])
    labels = torch.tensor([0])
    gt_masks = torch.ones(1, 64, 64, dtype=torch.bool)
    return cls, masks, labels, gt_masks, num_points


def test_hungarian_class_cost_defaults_to_two():
    """Mask2Former / HF ``Mask2FormerConfig.class_weight`` is 2.0."""
    cls, masks, labels, gt_masks, num_points = _class_versus_mask_case()
    torch.manual_seed(0)
    p_default, _ = hungarian_match(
        cls, masks, labels, gt_masks, num_points=num_points)
    torch.manual_seed(0)
    p_two, _ = hungarian_match(
        cls, masks, labels, gt_masks, cost_class=2.0, num_points=num_points)
    torch.manual_seed(0)
    p_one, _ = hungarian_match(
        cls, masks, labels, gt_masks, cost_class=1.0, num_points=num_points)
    assert p_default.tolist() == p_two.tolist() == [0]
    assert p_one.tolist() == [1]
    assert MaskClassificationLoss(num_classes=K).cost_class == 2.0
    # the loss passes its cost_class on to the matching
    gt = torch.zeros(1, 64, 64, dtype=torch.long)
    for weight, query in ((2.0, 0), (1.0, 1)):
        torch.manual_seed(0)
        out = _build(
            cost_class=weight,
            num_points=num_points).assign(cls[None], masks[None], gt)
        assert out['pred_inds'][0].tolist() == [query]


def test_unmatched_queries_target_no_object():
    torch.manual_seed(0)
    cls, mask_logits, _, _ = _matching_case()
    gt = _gt_map(16)
    loss = _build()
    out = loss.assign(cls[None], mask_logits[None], gt[None])
    assert out['cls_targets'].tolist() == [[2, K, 0, 1]]
    # only class 1 present (rest ignored): all other queries -> no-object
    gt2 = torch.full((16, 16), 255, dtype=torch.long)
    gt2[8:, 8:] = 1
    out = loss.assign(cls[None], mask_logits[None], gt2[None])
    assert out['cls_targets'].tolist() == [[K, K, K, 1]]


def test_ignore_label_is_never_a_target():
    torch.manual_seed(0)
    gt = _gt_map(16)
    gt[4:12, 4:12] = 255
    cls = torch.randn(2, 10, K + 1)
    masks = torch.randn(2, 10, 8, 8)
    out = _build().assign(cls, masks, torch.stack([gt, gt]))
    assert out['cls_targets'].max() <= K
    assert out['cls_targets'].min() >= 0
    for labels in out['gt_labels']:
        assert 255 not in labels.tolist()


# ------------------------------------------------------------------ loss
def _batch_perfect():
    # GT at twice the mask resolution, like the padded input vs 256x256 logits
    gt = _gt_map(128)
    gt2 = torch.zeros(128, 128, dtype=torch.long)
    gt2[32:96, 32:96] = 2
    c1, m1 = _perfect_preds(gt, {2: 0, 0: 2, 1: 3}, 5, (64, 64))
    c2, m2 = _perfect_preds(gt2, {0: 4, 2: 1}, 5, (64, 64))
    return (torch.stack([c1, c2]), torch.stack([m1,
                                                m2]), torch.stack([gt, gt2]))


def test_perfect_predictions_give_near_zero_loss():
    torch.manual_seed(0)
    cls, masks, gt = _batch_perfect()
    losses = _build(num_points=1024)(cls, masks, gt)
    assert set(losses) == {'loss_cls', 'loss_mask', 'loss_dice'}
    assert losses['loss_cls'] < 1e-6
    # Not exactly 0: within a pixel of a boundary the bilinearly sampled GT is
    # fractional while the +-20 logits are saturated, and importance
    # sampling favours exactly those points; within half a pixel of the
    # image border both are blended with the zero padding (as in the
    # reference). A wrong mask costs ~3.
    assert losses['loss_mask'] < 0.12
    assert losses['loss_dice'] < 0.03


def test_swapping_predicted_classes_raises_loss():
    torch.manual_seed(0)
    cls, masks, gt = _batch_perfect()
    loss = _build(num_points=1024)
    base = sum(loss(cls, masks, gt).values())
    swapped = cls.clone()
    swapped[0, [2, 3]] = cls[0, [3, 2]]  # class 0 <-> class 1 queries
    torch.manual_seed(0)
    worse = loss(swapped, masks, gt)
    assert worse['loss_cls'] > 1.0
    assert sum(worse.values()) > base + 1.0


def test_mismatched_masks_raise_mask_losses():
    torch.manual_seed(0)
    cls, masks, gt = _batch_perfect()
    loss = _build(num_points=1024)
    base = loss(cls, masks, gt)
    torch.manual_seed(0)
    bad = loss(cls, -masks, gt)
    assert bad['loss_mask'] > base['loss_mask'] + 1.0
    assert bad['loss_dice'] > base['loss_dice'] + 0.1


def test_loss_weights_scale_terms():
    cls, masks, gt = _batch_perfect()
    masks = masks * 0.1  # make every term clearly non-zero
    torch.manual_seed(0)
    a = _build()(cls * 0.1, masks, gt)
    torch.manual_seed(0)
    b = _build(
        loss_weight_cls=2.0, loss_weight_mask=3.0,
        loss_weight_dice=0.5)(cls * 0.1, masks, gt)
    assert torch.allclose(b['loss_cls'], 2.0 * a['loss_cls'])
    assert torch.allclose(b['loss_mask'], 3.0 * a['loss_mask'])
    assert torch.allclose(b['loss_dice'], 0.5 * a['loss_dice'])


def test_no_object_weight_in_cross_entropy():
    # All queries unmatched (all-ignore image): CE is the plain mean over
    # queries of -log p(no object) whatever the weight, since weighted mean.
    cls = torch.randn(1, 4, K + 1)
    gt = torch.full((1, 8, 8), 255, dtype=torch.long)
    out = _build()(cls, torch.randn(1, 4, 4, 4), gt)
    expected = -cls.log_softmax(-1)[0, :, K].mean()
    assert torch.allclose(out['loss_cls'], expected, atol=1e-6)
    # One matched query (class 1) among 4: weights 1 and 0.1 x 3.
    gt = torch.ones(1, 8, 8, dtype=torch.long)
    torch.manual_seed(0)
    loss = _build(num_points=64)
    out = loss(cls, torch.randn(1, 4, 4, 4), gt)
    torch.manual_seed(0)
    tgt = loss.assign(cls, torch.randn(1, 4, 4, 4), gt)['cls_targets'][0]
    logp = cls.log_softmax(-1)[0]
    w = torch.tensor([1.0 if t < K else 0.1 for t in tgt.tolist()])
    nll = torch.stack([-logp[q, t] for q, t in enumerate(tgt.tolist())])
    assert torch.allclose(
        out['loss_cls'], (w * nll).sum() / w.sum(), atol=1e-5)


def test_all_ignore_image_is_finite_and_differentiable():
    torch.manual_seed(0)
    cls = torch.randn(2, 6, K + 1, requires_grad=True)
    masks = torch.randn(2, 6, 8, 8, requires_grad=True)
    gt = torch.full((2, 32, 32), 255, dtype=torch.long)
    out = _build()(cls, masks, gt)
    total = sum(out.values())
    assert all(torch.isfinite(v) for v in out.values())
    assert out['loss_mask'] == 0 and out['loss_dice'] == 0
    total.backward()
    assert masks.grad is not None and torch.isfinite(masks.grad).all()
    # one all-ignore image next to a normal one
    gt[0] = _gt_map(32)
    out = _build()(cls, masks, gt)
    assert all(torch.isfinite(v) and v > 0 for v in out.values())


def test_gradients_reach_cls_and_mask_logits():
    torch.manual_seed(0)
    cls = torch.randn(2, 6, K + 1, requires_grad=True)
    masks = torch.randn(2, 6, 16, 16, requires_grad=True)
    gt = torch.stack([_gt_map(64), _gt_map(64).flip(0)])
    gt[1, :8] = 255
    out = _build()(cls, masks, gt)
    sum(out.values()).backward()
    assert cls.grad.abs().sum() > 0 and masks.grad.abs().sum() > 0
    assert torch.isfinite(cls.grad).all() and torch.isfinite(masks.grad).all()
    # the mask terms alone also reach the mask logits
    masks.grad = None
    out = _build()(cls, masks, gt)
    (out['loss_mask'] + out['loss_dice']).backward()
    assert masks.grad.abs().sum() > 0


def test_ignored_pixels_do_not_affect_mask_loss():
    # Whatever the prediction inside an ignored block, mask/dice are equal.
    torch.manual_seed(0)
    gt = _gt_map(16)
    gt[:, :6] = 255
    cls, masks = _perfect_preds(_gt_map(16), {2: 0, 0: 2, 1: 3}, 4)
    loss = _build(num_points=512, importance_sample_ratio=0.0)
    torch.manual_seed(1)
    a = loss(cls[None], masks[None], gt[None])
    noisy = masks.clone()
    noisy[:, :, :5] = torch.randn_like(noisy[:, :, :5]) * 10
    torch.manual_seed(1)
    b = loss(cls[None], noisy[None], gt[None])
    assert torch.allclose(a['loss_mask'], b['loss_mask'])
    assert torch.allclose(a['loss_dice'], b['loss_dice'])


def test_gt_at_higher_resolution_and_4d_gt():
    torch.manual_seed(0)
    cls, masks, gt = _batch_perfect()
    out = _build()(cls, masks, gt[:, None])
    assert all(torch.isfinite(v) for v in out.values())


def test_num_masks_all_reduced_across_processes(monkeypatch):
    cls, masks, gt = _batch_perfect()
    masks = masks * 0.05
    torch.manual_seed(0)
    single = _build()(cls, masks, gt)
    # Simulate 2 processes where the other one has no GT mask at all: the
    # global mean count halves, so mask/dice (normalised by it) double.
    monkeypatch.setattr(mcl, 'get_world_size', lambda: 2)
    monkeypatch.setattr(mcl, 'all_reduce', lambda t, op='sum': t)
    torch.manual_seed(0)
    dist = _build()(cls, masks, gt)
    assert torch.allclose(dist['loss_mask'], 2 * single['loss_mask'])
    assert torch.allclose(dist['loss_dice'], 2 * single['loss_dice'])
    assert torch.allclose(dist['loss_cls'], single['loss_cls'])


def test_deterministic_under_manual_seed():
    cls = torch.randn(2, 5, K + 1)
    masks = torch.randn(2, 5, 8, 8)
    gt = torch.stack([_gt_map(16), _gt_map(16).t()])
    torch.manual_seed(3)
    a = _build()(cls, masks, gt)
    torch.manual_seed(3)
    b = _build()(cls, masks, gt)
    for k in a:
        assert torch.equal(a[k], b[k])


def test_shape_errors():
    loss = _build()
    with pytest.raises(ValueError, match='num_classes'):
        loss(
            torch.randn(1, 4, K), torch.randn(1, 4, 8, 8),
            torch.zeros(1, 8, 8, dtype=torch.long))


# --------------------------------------------------------- point sampling
def test_uncertain_points_prefer_boundaries_and_valid_pixels():
    torch.manual_seed(0)
    logits = torch.where(torch.arange(32)[None, :] < 16, 10.0,
                         -10.0).expand(32, 32)[None, None].clone()
    pts = get_uncertain_point_coords_with_randomness(logits, 8, 20.0, 1.0)
    assert pts.shape == (1, 8, 2)
    chosen = point_sample(logits, pts)[0, 0].abs().mean()
    uniform = point_sample(logits, torch.rand(1, 64, 2))[0, 0].abs().mean()
    assert chosen < 0.5 * uniform
    valid = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    valid[..., :, 8:] = False  # boundary is inside the ignored area
    pts = get_uncertain_point_coords_with_randomness(logits, 8, 20.0, 1.0,
                                                     valid)
    assert (pts[0, :, 0] < 9 / 32).all()
    pts = get_uncertain_point_coords_with_randomness(logits, 64, 3.0, 0.5)
    assert pts.shape == (1, 64, 2)


# ------------------------------------------------------- point sampling
def _bilinear(maps, points, padding):
    """``grid_sample(maps, 2 p - 1, align_corners=False)`` written out, in
    float64.

    maps (R, H, W); points (R, P, 2) in [0, 1] (x, y); padding 'zeros'
    (pixels outside read 0) or 'border' (coordinates clipped to the map).
    Pixel centres sit at ``(i + 0.5) / size``: the source coordinate is
    ``x = p_x W - 0.5``; with ``x0 = floor(x)``, ``fx = x - x0`` (same for
    y) the value is the sum of the four neighbours weighted by
    ``(1 - fx)(1 - fy)``, ``fx (1 - fy)``, ``(1 - fx) fy`` and ``fx fy``.
    """
    R, H, W = maps.shape
    maps = maps.double()
    out = torch.zeros(R, points.shape[1], dtype=torch.float64)
    for r in range(R):
        for i in range(points.shape[1]):
            x = points[r, i, 0].item() * W - 0.5
            y = points[r, i, 1].item() * H - 0.5
            if padding == 'border':
                x = min(max(x, 0.0), W - 1.0)
                y = min(max(y, 0.0), H - 1.0)
            x0, y0 = math.floor(x), math.floor(y)
            fx, fy = x - x0, y - y0
            for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)),
                                   (1, 0, fx * (1 - fy)),
                                   (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
                cx, cy = x0 + dx, y0 + dy
                if 0 <= cx < W and 0 <= cy < H:
                    out[r, i] += maps[r, cy, cx] * weight
    return out


def _sample_point(maps, points):
    """HF Mask2Former's ``sample_point`` as the reference calls it."""
    return torch.nn.functional.grid_sample(
        maps[:, None], 2.0 * points[:, :, None] - 1.0,
        align_corners=False)[:, 0, :, 0]


ULP = 2.0**-23  # float32 resolution at 1


def _points_near_the_border(num_rois, generator):
    """Random points, a third of them within half a pixel of the border."""
    pts = torch.rand(num_rois, 60, 2, generator=generator)
    pts[:, :20, 0] = pts[:, :20, 0] * 0.05
    pts[:, 20:40, 1] = 1 - pts[:, 20:40, 1] * 0.05
    pts[:, 40, :] = torch.tensor([0.0, 1.0])
    return pts


def test_point_sampling_is_zero_padded_bilinear_bit_for_bit():
    """Without ignored pixels the targets are HF Mask2Former's
    ``sample_point`` (grid_sample, zero padding, align_corners=False) bit for
    bit, every weight is exactly 1, and both equal the written-out bilinear
    formula with zeros outside the map (to float32 rounding of the float64
    formula)."""
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 7, 9, generator=g) > 0.5
    pts = _points_near_the_border(3, g)
    targets, weights = mcl.sample_targets(gt, torch.ones(1, 7, 9), pts)
    assert torch.equal(targets, _sample_point(gt.float(), pts))
    assert torch.equal(weights, torch.ones(3, 60))
    formula = _bilinear(gt.float(), pts, 'zeros')
    torch.testing.assert_close(targets.double(), formula, atol=2 * ULP, rtol=0)
    # Within half a pixel of the border the target is blended with the zero
    # padding: a GT that is 1 everywhere reads 1 - (share outside).
    ones, _ = mcl.sample_targets(
        torch.ones(1, 7, 9), torch.ones(1, 7, 9), pts[:1])
    outside_x = (0.5 - pts[0, :, 0] * 9).clamp(min=0) + \
        (pts[0, :, 0] * 9 - 8.5).clamp(min=0)
    outside_y = (0.5 - pts[0, :, 1] * 7).clamp(min=0) + \
        (pts[0, :, 1] * 7 - 6.5).clamp(min=0)
    torch.testing.assert_close(
        ones[0], (1 - outside_x) * (1 - outside_y), atol=1e-6, rtol=0)
    assert ones[0, 40].item() == pytest.approx(0.25, abs=1e-6)  # corner


def test_point_sampling_weights_ignored_pixels():
    """``w = b_border(valid)`` (exactly 1 where no ignored pixel is near, 0
    inside an ignored region) and ``t = b_zeros(gt * valid) / w``."""
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 8, 8, generator=g) > 0.5
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    valid[:, :, 5:] = False  # an ignored band along the right edge
    valid[1, 0:2, :] = False
    pts = _points_near_the_border(2, g)
    pts[:, 41:44] = torch.tensor([[0.99, 0.5], [0.5, 0.5], [0.2, 0.5]])
    targets, weights = mcl.sample_targets(gt, valid, pts)
    w_formula = _bilinear(valid.float(), pts, 'border')
    near_ignored = _bilinear(1 - valid.float(), pts, 'border') > 0
    expected_w = torch.where(near_ignored, w_formula,
                             torch.ones((), dtype=torch.float64))
    torch.testing.assert_close(
        weights.double(), expected_w, atol=2 * ULP, rtol=0)
    num = _bilinear((gt & valid).float(), pts, 'zeros')
    expected_t = torch.where(expected_w > 0, num / expected_w.clamp(min=1e-6),
                             torch.zeros((), dtype=torch.float64)).clamp(0, 1)
    # the division amplifies the rounding where few valid pixels remain
    torch.testing.assert_close(targets.double(), expected_t, atol=1e-5, rtol=0)
    # deep inside the ignored band (also beyond the right border): weight 0
    assert weights[:, 41].tolist() == [0.0, 0.0]
    # far from any ignored pixel: exactly 1, target exactly the plain sample
    assert weights[0, 43].item() == 1.0
    assert targets[0, 43] == _sample_point(gt.float(), pts)[0, 43]
    # the ignored pixels' own GT value never leaks into a target
    flipped = gt.clone()
    flipped[~valid] = ~flipped[~valid]
    assert torch.equal(mcl.sample_targets(flipped, valid, pts)[0], targets)


def _hf_mask_losses(logits, gt, coords, num_masks):
    """HF Mask2Former's ``sigmoid_cross_entropy_loss`` and ``dice_loss`` on
    ``sample_point``-ed logits and labels, written out."""
    point_logits = _sample_point(logits, coords)
    labels = _sample_point(gt.float(), coords)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        point_logits, labels, reduction='none')
    loss_mask = bce.mean(1).sum() / num_masks
    probs = point_logits.sigmoid()
    numerator = 2 * (probs * labels).sum(-1)
    denominator = probs.sum(-1) + labels.sum(-1)
    loss_dice = (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks
    return loss_mask, loss_dice


def test_mask_losses_equal_the_reference_bit_for_bit(monkeypatch):
    """Same points, no ignored pixel: loss_mask, loss_dice and their
    gradients are those of HF Mask2Former, bit for bit."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 8, 8, generator=g) * 3
    gt = torch.rand(3, 16, 16, generator=g) > 0.5
    coords = torch.rand(3, 512, 2, generator=g)
    monkeypatch.setattr(mcl, 'get_uncertain_point_coords_with_randomness',
                        lambda *args, **kwargs: coords)
    ours_in = logits.clone().requires_grad_()
    ours = _build()._mask_losses(ours_in, gt, torch.ones_like(gt), 2.0)
    ref_in = logits.clone().requires_grad_()
    ref = _hf_mask_losses(ref_in, gt, coords, 2.0)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    (ours[0] + ours[1]).backward()
    (ref[0] + ref[1]).backward()
    assert torch.equal(ours_in.grad, ref_in.grad)


def test_registered_and_no_persistent_buffers():
    loss = _build(no_object_weight=0.25)
    assert isinstance(loss, MaskClassificationLoss)
    assert loss.class_weight.tolist() == [1.0, 1.0, 1.0, 0.25]
    assert len(loss.state_dict()) == 0


def test_shared_validity_maps_equal_per_mask_copies_bit_for_bit():
    """Masks of one image share its validity map (sampled once, at all their
    points); the result is that of a copy of the map per mask."""
    g = torch.Generator().manual_seed(3)
    valid = torch.rand(2, 12, 10, generator=g) > 0.3  # two images
    gt = torch.rand(5, 12, 10, generator=g) > 0.5
    owner = torch.tensor([1, 0, 1, 1, 0])
    pts = _points_near_the_border(5, g)
    copies = valid[owner]
    t_shared, w_shared = mcl.sample_targets(gt, valid, pts, owner)
    t_copy, w_copy = mcl.sample_targets(gt, copies, pts)
    assert torch.equal(t_shared, t_copy) and torch.equal(w_shared, w_copy)
    assert (w_copy < 1).any() and (w_copy == 1).any()
    # one set of points for every mask (matching): one map, sampled once
    shared_pts = pts[:1]
    t_one, w_one = mcl.sample_targets(gt, valid[:1], shared_pts)
    t_ref, w_ref = mcl.sample_targets(gt, valid[:1].expand(5, -1, -1),
                                      shared_pts.expand(5, -1, -1))
    assert torch.equal(t_one, t_ref) and torch.equal(w_one, w_ref)
    # the loss: per-image maps with owner = expanded copies
    logits = torch.randn(5, 6, 5, generator=g)
    loss = _build(num_points=64)
    torch.manual_seed(0)
    shared = loss._mask_losses(logits, gt, valid, 3.0, owner)
    torch.manual_seed(0)
    copied = loss._mask_losses(logits, gt, copies, 3.0)
    assert all(torch.equal(a, b) for a, b in zip(shared, copied))


@pytest.mark.parametrize('num_present', [3, 60])
def test_work_does_not_loop_over_classes_or_queries(monkeypatch, num_present):
    """K = 150, N = 100: the number of sampling and matching calls depends
    on the batch size only, not on the classes present or the queries."""
    calls = dict(point_sample=0, linear_sum_assignment=0)

    def counting(name, fn):

        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapped

    for name in calls:
        monkeypatch.setattr(mcl, name, counting(name, getattr(mcl, name)))
    g = torch.Generator().manual_seed(4)
    labels = torch.randperm(150, generator=g)[:num_present]
    gt = labels[torch.arange(64) * num_present // 64].view(1, 64).expand(
        2, 64, 64).clone()
    gt[1, :5] = 255
    loss = _build(num_classes=150, num_points=128)
    cls_logits = torch.randn(2, 100, 151, generator=g, requires_grad=True)
    mask_logits = torch.randn(2, 100, 16, 16, generator=g, requires_grad=True)
    losses = loss(cls_logits, mask_logits, gt)
    sum(losses.values()).backward()
    assert mask_logits.grad.abs().sum() > 0
    # matching, per image: targets, weights, predictions; the mask losses
    # (all matched masks at once): candidates' logits, their weights per
    # image, targets, their weights per image, the chosen points' logits
    assert calls == dict(
        point_sample=2 * 3 + (1 + 2 + 1 + 2 + 1), linear_sum_assignment=2)
