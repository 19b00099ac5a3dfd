"""MaskClassificationLoss: exact mask BCE and dice on known points.

The loss evaluates the matched masks on importance-sampled points. With the
sampler replaced by one that returns every pixel centre, the bilinear
samples are the pixel values themselves, so both terms can be written out
by hand (numpy) from the logits and the ground truth.
"""
import numpy as np
import pytest
import torch
from mmseg.registry import MODELS

from mmseg_convlora.models.losses import mask_classification_loss as mcl

K = 3
SIZE = 8


def pixel_centres(size):
    """Normalised (x, y) of every pixel centre, row-major, shape (P, 2)."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(c, c, indexing='ij')
    return torch.stack([x.flatten(), y.flatten()], -1)


def bce_by_hand(x, t):
    s = 1 / (1 + np.exp(-x))
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


def test_mask_bce_and_dice_equal_the_written_out_formulas(monkeypatch):
    # GT: left half class 0, top right class 2, bottom right class 1.
    gt = torch.zeros(SIZE, SIZE, dtype=torch.long)
    gt[:SIZE // 2, SIZE // 2:] = 2
    gt[SIZE // 2:, SIZE // 2:] = 1
    # Query q favours class q and has a noisy mask of it; the fourth query
    # favours "no object".
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(1, 4, K + 1, generator=g)
    masks = torch.empty(1, 4, SIZE, SIZE)
    for q in range(K):
        cls[0, q, q] = 3.0
        masks[0, q] = 2.0 * (2.0 * (gt == q) - 1) + torch.randn(
            SIZE, SIZE, generator=g)
    cls[0, 3, K] = 3.0
    masks[0, 3] = torch.randn(SIZE, SIZE, generator=g)

    centres = pixel_centres(SIZE)

    def every_pixel_centre(logits, *args, **kwargs):
        return centres[None].expand(logits.shape[0], -1, -1)

    monkeypatch.setattr(mcl, 'get_uncertain_point_coords_with_randomness',
                        every_pixel_centre)
    loss = MODELS.build(
        dict(
            type='MaskClassificationLoss',
            num_classes=K,
            num_points=64,
            loss_weight_cls=1.0,
            loss_weight_mask=1.0,
            loss_weight_dice=1.0))
    out = loss(cls, masks, gt[None])

    # Matched pairs: query q with the mask of class q (3 masks).
    x = masks[0, :K].double().numpy()
    t = np.stack([(gt == q).double().numpy() for q in range(K)])
    bce = [bce_by_hand(x[q], t[q]).mean() for q in range(K)]
    s = 1 / (1 + np.exp(-x))
    dice = [
        1 - (2 * (s[q] * t[q]).sum() + 1) / (s[q].sum() + t[q].sum() + 1)
        for q in range(K)
    ]
    # float32 inside the loss: agreement to float32 rounding
    assert out['loss_mask'].item() == pytest.approx(np.mean(bce), rel=1e-5)
    assert out['loss_dice'].item() == pytest.approx(np.mean(dice), rel=1e-5)
    # and the class term: cross entropy with the no-object class weighted
    # 0.1, a weighted mean over the 4 queries
    logp = torch.log_softmax(cls[0].double(), -1)
    targets = [0, 1, 2, K]
    w = np.array([1, 1, 1, 0.1])
    ce = -np.array([logp[q, c].item() for q, c in enumerate(targets)])
    assert out['loss_cls'].item() == pytest.approx(
        (w * ce).sum() / w.sum(), rel=1e-5)
