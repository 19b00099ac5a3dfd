import math

import pytest
import torch

from mmseg_convlora.compat import point_sample
from mmseg_convlora.models.losses import mask_classification_loss as mcl
from mmseg_convlora.models.losses.mask_classification_loss import (
    MaskClassificationLoss, get_uncertain_point_coords_with_randomness,
    hungarian_match, sem_seg_to_segments, semantic_inference)

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
        0: 2, 2: 0, 3: 1}


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
    p, g = hungarian_match(cls[2:4], mask_logits[2:4], labels, masks,
                           num_points=64)
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
    p, g = hungarian_match(cls, torch.stack([m0, m1]), labels[:1],
                           masks[:1], valid=gt != 255, num_points=512)
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
        dice = 1 - (2 * s * num_points + 1) / (s * num_points + num_points +
                                               1)
        return 5 * math.log1p(math.exp(-x)) + 5 * dice

    delta = mask_cost(x_a) - mask_cost(x_b)
    p_b = 0.2
    p_a = p_b + delta * 0.75
    assert 0 < p_a < 1
    probs = torch.tensor([[p_a, (1 - p_a) / 2, 0, (1 - p_a) / 2],
                          [p_b, (1 - p_b) / 2, 0, (1 - p_b) / 2]])
    cls = probs.clamp(min=1e-12).log()
    masks = torch.stack(
        [torch.full((64, 64), x_a),
         torch.full((64, 64), x_b)])
    labels = torch.tensor([0])
    gt_masks = torch.ones(1, 64, 64, dtype=torch.bool)
    return cls, masks, labels, gt_masks, num_points


def test_hungarian_class_cost_defaults_to_two():
    """Mask2Former / HF ``Mask2FormerConfig.class_weight`` is 2.0."""
    cls, masks, labels, gt_masks, num_points = _class_versus_mask_case()
    torch.manual_seed(0)
    p_default, _ = hungarian_match(cls, masks, labels, gt_masks,
                                   num_points=num_points)
    torch.manual_seed(0)
    p_two, _ = hungarian_match(cls, masks, labels, gt_masks,
                               cost_class=2.0, num_points=num_points)
    torch.manual_seed(0)
    p_one, _ = hungarian_match(cls, masks, labels, gt_masks,
                               cost_class=1.0, num_points=num_points)
    assert p_default.tolist() == p_two.tolist() == [0]
    assert p_one.tolist() == [1]
    assert MaskClassificationLoss(num_classes=K).cost_class == 2.0
    # the loss passes its cost_class on to the matching
    gt = torch.zeros(1, 64, 64, dtype=torch.long)
    for weight, query in ((2.0, 0), (1.0, 1)):
        torch.manual_seed(0)
        out = _build(cost_class=weight, num_points=num_points).assign(
            cls[None], masks[None], gt)
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
    return (torch.stack([c1, c2]), torch.stack([m1, m2]),
            torch.stack([gt, gt2]))


def test_perfect_predictions_give_near_zero_loss():
    torch.manual_seed(0)
    cls, masks, gt = _batch_perfect()
    losses = _build(num_points=1024)(cls, masks, gt)
    assert set(losses) == {'loss_cls', 'loss_mask', 'loss_dice'}
    assert losses['loss_cls'] < 1e-6
    # Not exactly 0: within a pixel of a boundary the bilinearly sampled GT is
    # fractional while the +-20 logits are saturated, and importance
    # sampling favours exactly those points. A wrong mask costs ~3.
    assert losses['loss_mask'] < 0.06
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
    b = _build(loss_weight_cls=2.0, loss_weight_mask=3.0,
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
    assert torch.allclose(out['loss_cls'], (w * nll).sum() / w.sum(),
                          atol=1e-5)


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
        loss(torch.randn(1, 4, K), torch.randn(1, 4, 8, 8),
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
    pts = get_uncertain_point_coords_with_randomness(
        logits, 8, 20.0, 1.0, valid)
    assert (pts[0, :, 0] < 9 / 32).all()
    pts = get_uncertain_point_coords_with_randomness(logits, 64, 3.0, 0.5)
    assert pts.shape == (1, 64, 2)


# ------------------------------------------------------------- inference
def test_semantic_inference_matches_explicit_sum():
    torch.manual_seed(0)
    B, N, h, w = 2, 3, 4, 5
    cls = torch.randn(B, N, K + 1)
    masks = torch.randn(B, N, h, w)
    out = semantic_inference(cls, masks)
    assert out.shape == (B, K, h, w)
    expected = torch.zeros(B, K, h, w)
    for b in range(B):
        for q in range(N):
            denom = sum(math.exp(v) for v in cls[b, q].tolist())
            for c in range(K):
                p = math.exp(cls[b, q, c].item()) / denom
                for y in range(h):
                    for x in range(w):
                        s = 1 / (1 + math.exp(-masks[b, q, y, x].item()))
                        expected[b, c, y, x] += p * s
    assert torch.allclose(out, expected, atol=1e-5)


def test_registered_and_no_persistent_buffers():
    loss = _build(no_object_weight=0.25)
    assert isinstance(loss, MaskClassificationLoss)
    assert loss.class_weight.tolist() == [1.0, 1.0, 1.0, 0.25]
    assert len(loss.state_dict()) == 0
