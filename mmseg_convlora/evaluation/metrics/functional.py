# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Per-image metric kernels on numpy / scipy.

Everything here works on one image at a time and returns plain Python or
numpy numbers; aggregation over a dataset is the job of the ``BaseMetric``
classes next to this module. Nothing loops over pixels or thresholds in
Python.

The salient-object-detection (SOD) kernels reproduce the standard Python port
of the MATLAB toolkits (``py_sod_metrics`` / PySODMetrics, itself a port of
Fan et al.'s and Margolin et al.'s MATLAB code) including their special cases,
so numbers are comparable with published tables. Where the port yields NaN in
a degenerate case that the MATLAB original handles, the MATLAB behaviour is
used and the function docstring says so.

Conventions shared by the SOD kernels:

* ``pred`` is a float map in [0, 1] of shape (H, W). Callers should pass it
  through :func:`prepare_sod_inputs` first (per-image min-max stretch).
* ``gt`` is a boolean map of shape (H, W) (foreground = True).
"""
from typing import Dict, Tuple, Union

import numpy as np
from scipy import ndimage

# The toolkits' ``eps`` (MATLAB ``eps`` == ``np.spacing(1)``).
EPS = np.spacing(1)

ArrayOrFloat = Union[np.ndarray, float]

__all__ = [
    'EPS', 'prepare_sod_inputs', 's_measure', 'e_measure_curve',
    'e_measure_adaptive', 'weighted_f_measure', 'mae', 'binary_counts',
    'ber_from_counts', 'iou_from_counts', 'dice_from_counts',
    'acc_from_counts', 'threshold_jaccard', 'confusion_matrix',
    'matlab_gaussian_kernel'
]


# ---------------------------------------------------------------------------
# SOD family
# ---------------------------------------------------------------------------
def prepare_sod_inputs(pred: np.ndarray,
                       gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Bring a prediction and a GT into the toolkits' working form.

    The toolkits read 0..255 maps, divide the prediction by 255, stretch it to
    [0, 1] per image when it is not constant, and binarise the GT at > 128 of
    255. Here the prediction already is a probability, so only the stretch
    remains; the GT is binarised at > 0.5 (the same cut at half scale).

    Args:
        pred (np.ndarray): Prediction in [0, 1], shape (H, W).
        gt (np.ndarray): GT in {0, 1} (or bool), shape (H, W).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(pred, gt)``: float64 (H, W) map in
        [0, 1] and bool (H, W) map.
    """
    pred = np.asarray(pred, dtype=np.float64)
    p_min, p_max = pred.min(), pred.max()
    if p_max > p_min:
        pred = (pred - p_min) / (p_max - p_min)
    gt = np.asarray(gt) > 0.5
    return pred, gt


def _object_score(values: np.ndarray) -> float:
    """S-measure object term of the values inside one region.

    ``2 x / (x^2 + 1 + sigma_x + eps)`` with the sample standard deviation
    (MATLAB ``std``, ddof = 1). A region of one pixel has sigma 0 as in MATLAB
    (numpy's ddof = 1 would give NaN there).
    """
    x = values.mean()
    sigma_x = values.std(ddof=1) if values.size > 1 else 0.0
    return 2.0 * x / (x * x + 1.0 + sigma_x + EPS)


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """The S-measure region term's SSIM of one quadrant.

    Uses MATLAB's ``N - 1 + eps`` normaliser, so that a one-pixel quadrant
    scores 1 (alpha = beta = 0) instead of the port's 0 / 0.
    """
    n = pred.size
    x = pred.mean()
    y = gt.mean()
    dx = pred - x
    dy = gt - y
    norm = n - 1 + EPS
    sigma_x = (dx * dx).sum() / norm
    sigma_y = (dy * dy).sum() / norm
    sigma_xy = (dx * dy).sum() / norm
    alpha = 4.0 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x + sigma_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    if beta == 0:
        return 1.0
    return 0.0


def _centroid(gt: np.ndarray) -> Tuple[int, int]:
    """GT centroid as MATLAB's 1-based ``(X, Y)``.

    The +1 mirrors MATLAB indexing so that ``gt[:y, :x]`` is MATLAB's
    ``GT(1:Y, 1:X)``. Rounding is numpy's (half to even), as in the port.
    """
    h, w = gt.shape
    area = gt.sum()
    if area == 0:
        x, y = np.round(w / 2), np.round(h / 2)
    else:
        x = np.round((gt.sum(axis=0) * np.arange(w)).sum() / area)
        y = np.round((gt.sum(axis=1) * np.arange(h)).sum() / area)
    return int(x) + 1, int(y) + 1


def _s_region(pred: np.ndarray, gt: np.ndarray) -> float:
    h, w = gt.shape
    area = h * w
    x, y = _centroid(gt)
    gt_f = gt.astype(np.float64)
    w1 = x * y / area
    w2 = y * (w - x) / area
    w3 = (h - y) * x / area
    w4 = 1.0 - w1 - w2 - w3
    quadrants = (
        (w1, np.s_[0:y, 0:x]),
        (w2, np.s_[0:y, x:w]),
        (w3, np.s_[y:h, 0:x]),
        (w4, np.s_[y:h, x:w]),
    )
    score = 0.0
    for weight, sl in quadrants:
        # A quadrant is empty only when the centroid sits on the last row or
        # column; its weight is then 0 and the toolkits' NaN (mean of an empty
        # array) would poison the score, so it is skipped.
        if pred[sl].size == 0:
            continue
        score += weight * _ssim(pred[sl], gt_f[sl])
    return score


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Structure measure (Fan et al., ICCV 2017).

    ``S = alpha * S_object + (1 - alpha) * S_region``, clipped below at 0.
    Special cases as in the toolkits: an all-background GT scores
    ``1 - mean(pred)``, an all-foreground GT scores ``mean(pred)``.

    Args:
        pred (np.ndarray): Prepared prediction in [0, 1], shape (H, W).
        gt (np.ndarray): Bool GT, shape (H, W).
        alpha (float): Balance of the object and region terms. Default 0.5.

    Returns:
        float: S-measure in [0, 1].
    """
    y = gt.mean()
    if y == 0:
        return float(1.0 - pred.mean())
    if y == 1:
        return float(pred.mean())
    object_score = (
        y * _object_score(pred[gt]) + (1 - y) * _object_score(1.0 - pred[~gt]))
    score = alpha * object_score + (1 - alpha) * _s_region(pred, gt)
    return float(max(0.0, score))


def _enhanced_alignment_sum(tp: ArrayOrFloat, fp: ArrayOrFloat, n_fg: int,
                            n: int) -> ArrayOrFloat:
    """Sum of the enhanced alignment matrix from confusion counts.

    With a binarised prediction, the alignment matrix takes only four values
    (one per TP/FP/FN/TN cell), so the sum is a weighted sum over the four
    cells; ``tp``/``fp`` may be arrays over thresholds.
    """
    pred_fg = tp + fp
    pred_bg = n - pred_fg
    if n_fg == 0:
        # Alignment with an all-zero GT degenerates; the toolkits score the
        # matrix as 1 on predicted background and 0 elsewhere.
        return pred_bg
    if n_fg == n:
        return pred_fg
    fn = n_fg - tp
    tn = pred_bg - fn
    mu_pred = pred_fg / n
    mu_gt = n_fg / n
    total = 0.0
    for count, a, b in ((tp, 1 - mu_pred, 1 - mu_gt), (fp, 1 - mu_pred,
                                                       -mu_gt),
                        (fn, -mu_pred, 1 - mu_gt), (tn, -mu_pred, -mu_gt)):
        align = 2.0 * a * b / (a * a + b * b + EPS)
        total = total + count * (align + 1.0)**2 / 4.0
    return total


def e_measure_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Enhanced-alignment measure (Fan et al., IJCAI 2018) at 256 thresholds.

    The prediction is quantised as ``uint8(pred * 255)`` (truncation, as in
    the port) and binarised at ``>= t`` for ``t = 255, 254, ..., 0``; a
    single joint histogram gives all 256 confusion counts. The score is the
    enhanced alignment sum divided by ``H * W - 1 + eps`` (the MATLAB
    normaliser; a perfect binary prediction therefore scores
    ``N / (N - 1)``, not exactly 1).

    Args:
        pred (np.ndarray): Prepared prediction in [0, 1], shape (H, W).
        gt (np.ndarray): Bool GT, shape (H, W).

    Returns:
        np.ndarray: float64 array of shape (256,), index ``i`` is threshold
        ``255 - i``. ``mean`` of it is the paper's E_phi ("meanEm").
    """
    n = gt.size
    n_fg = int(np.count_nonzero(gt))
    q = (pred * 255).astype(np.uint8).ravel().astype(np.intp)
    # Joint histogram: bins 0..255 are GT background, 256..511 foreground.
    hist = np.bincount(q + 256 * gt.ravel(), minlength=512)
    tp = np.cumsum(hist[:255:-1])
    fp = np.cumsum(hist[255::-1])
    score = _enhanced_alignment_sum(
        tp.astype(np.float64), fp.astype(np.float64), n_fg, n)
    return np.asarray(score, dtype=np.float64) / (n - 1 + EPS)


def e_measure_adaptive(pred: np.ndarray, gt: np.ndarray) -> float:
    """E-measure at the adaptive threshold ``min(2 * mean(pred), 1)``.

    The threshold is applied to the continuous (non-quantised) map with
    ``>=``, as in the port.

    Args:
        pred (np.ndarray): Prepared prediction in [0, 1], shape (H, W).
        gt (np.ndarray): Bool GT, shape (H, W).

    Returns:
        float: adaptive E-measure ("adpEm").
    """
    n = gt.size
    n_fg = int(np.count_nonzero(gt))
    binary = pred >= min(2.0 * pred.mean(), 1.0)
    tp = float(np.count_nonzero(binary & gt))
    fp = float(np.count_nonzero(binary & ~gt))
    return float(_enhanced_alignment_sum(tp, fp, n_fg, n) / (n - 1 + EPS))


def matlab_gaussian_kernel(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``.

    The 2-D kernel is the outer product of this vector with itself (the
    ``eps``-truncation of ``fspecial`` never triggers for 7x7, sigma 5),
    which lets the weighted F-measure filter separably.

    Returns:
        np.ndarray: float64 (size,) kernel summing to 1.
    """
    r = (size - 1) / 2
    x = np.arange(-r, r + 1)
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def weighted_f_measure(pred: np.ndarray,
                       gt: np.ndarray,
                       beta2: float = 1.0) -> float:
    """Weighted F-measure (Margolin et al., CVPR 2014).

    Follows the MATLAB ``WFb`` / port step by step: errors of background
    pixels are replaced by those of their nearest foreground pixel
    (``distance_transform_edt`` with indices), smoothed with a 7x7 Gaussian
    (sigma 5, zero padding, correlation) to model pixel dependency, kept at
    the smaller of raw and smoothed error on the foreground, and background
    errors are weighted by ``2 - exp(ln(0.5) / 5 * distance)``. An
    all-background GT scores 0 (the port's convention).

    Args:
        pred (np.ndarray): Prepared prediction in [0, 1], shape (H, W).
        gt (np.ndarray): Bool GT, shape (H, W).
        beta2 (float): beta^2 of the F-measure. 1 is the toolkits' default;
            the Conv-LoRA paper's numbers use 0.3. Default 1.

    Returns:
        float: weighted F-measure in [0, 1].
    """
    if not gt.any():
        return 0.0
    # Distance from every background pixel to the nearest foreground pixel,
    # and that pixel's index (foreground pixels point to themselves).
    dist, idx = ndimage.distance_transform_edt(~gt, return_indices=True)
    err = np.abs(pred - gt)
    err_t = err[idx[0], idx[1]]
    k = matlab_gaussian_kernel(7, 5.0)
    err_a = ndimage.correlate1d(err_t, k, axis=0, mode='constant', cval=0.0)
    err_a = ndimage.correlate1d(err_a, k, axis=1, mode='constant', cval=0.0)
    min_err = np.where(gt & (err_a < err), err_a, err)
    importance = np.where(gt, 1.0, 2.0 - np.exp(np.log(0.5) / 5.0 * dist))
    err_w = min_err * importance
    err_w_fg = err_w[gt]
    tp_w = err_w_fg.size - err_w_fg.sum()
    fp_w = err_w[~gt].sum()
    recall = 1.0 - err_w_fg.mean()
    precision = tp_w / (tp_w + fp_w + EPS)
    return float(
        (1 + beta2) * recall * precision / (recall + beta2 * precision + EPS))


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the prepared map and the binary GT.

    Returns:
        float: MAE in [0, 1].
    """
    return float(np.abs(pred - gt).mean())


# ---------------------------------------------------------------------------
# Binary classification counts (BER, IoU, Dice, Acc, Jaccard)
# ---------------------------------------------------------------------------
def binary_counts(pred: np.ndarray,
                  gt: np.ndarray,
                  valid: np.ndarray = None) -> Dict[str, int]:
    """Confusion counts of two boolean maps over the valid pixels.

    Args:
        pred (np.ndarray): Bool prediction, any shape.
        gt (np.ndarray): Bool GT, same shape.
        valid (np.ndarray, optional): Bool mask of pixels to count (ignore
            label excluded). None counts every pixel.

    Returns:
        dict[str, int]: ``tp``, ``fp``, ``fn``, ``tn``.
    """
    if valid is not None:
        pred = pred[valid]
        gt = gt[valid]
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    tn = int(pred.size) - tp - fp - fn
    return dict(tp=tp, fp=fp, fn=fn, tn=tn)


def ber_from_counts(tp: ArrayOrFloat, fp: ArrayOrFloat, fn: ArrayOrFloat,
                    tn: ArrayOrFloat) -> Tuple[ArrayOrFloat, ...]:
    """Balance error rate and its two halves, in percent (SBU convention).

    ``BER = 100 * (1 - (TP / Np + TN / Nn) / 2)``, shadow error
    ``100 * (1 - TP / Np)``, non-shadow error ``100 * (1 - TN / Nn)``. A term
    whose class is absent (``Np`` or ``Nn`` is 0) is NaN, and so is the BER.
    Works element-wise on arrays (e.g. one entry per class).

    Returns:
        tuple: ``(ber, pos_err, neg_err)``.
    """
    tp, fp, fn, tn = (
        np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    n_pos = tp + fn
    n_neg = tn + fp
    with np.errstate(divide='ignore', invalid='ignore'):
        pos_err = np.where(n_pos > 0, 100.0 * (1.0 - tp / n_pos), np.nan)
        neg_err = np.where(n_neg > 0, 100.0 * (1.0 - tn / n_neg), np.nan)
    ber = (pos_err + neg_err) / 2.0
    if ber.ndim == 0:
        return float(ber), float(pos_err), float(neg_err)
    return ber, pos_err, neg_err


def iou_from_counts(tp, fp, fn):
    """Foreground IoU (= Jaccard) ``TP / (TP + FP + FN)``; 1.0 when GT and
    prediction are both empty (ISIC convention). Fraction in [0, 1]."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    union = tp + fp + fn
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, tp / union, 1.0)


def dice_from_counts(tp, fp, fn):
    """Dice ``2 TP / (2 TP + FP + FN)``; 1.0 when both maps are empty.
    Fraction in [0, 1]."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(denom > 0, 2 * tp / denom, 1.0)


def acc_from_counts(tp, fp, fn, tn):
    """Pixel accuracy ``(TP + TN) / N``; NaN when no pixel is valid.
    Fraction in [0, 1]."""
    tp, fp, fn, tn = (
        np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(n > 0, (tp + tn) / n, np.nan)


def threshold_jaccard(jaccard, threshold: float = 0.65):
    """ISIC 2018 thresholded Jaccard: per-image values below ``threshold``
    count as 0. Element-wise on fractions in [0, 1]."""
    jaccard = np.asarray(jaccard, dtype=np.float64)
    return np.where(jaccard < threshold, 0.0, jaccard)


# ---------------------------------------------------------------------------
# Multi-class
# ---------------------------------------------------------------------------
def confusion_matrix(pred: np.ndarray,
                     gt: np.ndarray,
                     num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """Confusion matrix of one image, ignore label excluded.

    Args:
        pred (np.ndarray): Integer prediction, shape (H, W).
        gt (np.ndarray): Integer GT, shape (H, W).
        num_classes (int): K.
        ignore_index (int): GT label excluded from every count.

    Returns:
        np.ndarray: int64 (K, K), rows = GT class, columns = predicted class.
    """
    gt = gt.ravel().astype(np.int64)
    pred = pred.ravel().astype(np.int64)
    # Out-of-range GT labels other than ignore_index are dropped with it,
    # like mmseg's IoUMetric does through its ignore mask.
    valid = (gt != ignore_index) & (gt >= 0) & (gt < num_classes)
    index = gt[valid] * num_classes + pred[valid]
    return np.bincount(
        index,
        minlength=num_classes * num_classes).reshape(num_classes, num_classes)
