# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Per-image metric kernels on numpy arrays.

The SOD kernels take ``pred``, a float (H, W) map prepared by
:func:`prepare_sod_inputs`, and ``gt``, a bool (H, W) map; see
docs/train_test.md for how they follow the toolkits.
"""
from typing import Dict, Tuple, Union

import numpy as np
from scipy import ndimage

# The toolkits' ``eps`` (MATLAB ``eps`` == ``np.spacing(1)``).
EPS = np.spacing(1)

ArrayOrFloat = Union[np.ndarray, float]


def prepare_sod_inputs(pred: np.ndarray,
                       gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Stretch ``pred`` to [0, 1] (float64) and binarise ``gt`` at 0.5."""
    pred = np.asarray(pred, dtype=np.float64)
    p_min, p_max = pred.min(), pred.max()
    if p_max > p_min:
        pred = (pred - p_min) / (p_max - p_min)
    return pred, np.asarray(gt) > 0.5


def _object_score(values: np.ndarray) -> float:
    """S-measure object term of the values of one region."""
    x = values.mean()
    sigma_x = values.std(ddof=1) if values.size > 1 else 0.0
    return 2.0 * x / (x * x + 1.0 + sigma_x + EPS)


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM of one S-measure quadrant (MATLAB's ``N - 1 + eps``)."""
    x, y = pred.mean(), gt.mean()
    dx, dy = pred - x, gt - y
    norm = pred.size - 1 + EPS
    sigma_x = (dx * dx).sum() / norm
    sigma_y = (dy * dy).sum() / norm
    sigma_xy = (dx * dy).sum() / norm
    alpha = 4.0 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x + sigma_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def _centroid(gt: np.ndarray) -> Tuple[int, int]:
    """GT centroid as MATLAB's 1-based ``(X, Y)``."""
    h, w = gt.shape
    area = gt.sum()
    if area == 0:
        return int(np.round(w / 2)) + 1, int(np.round(h / 2)) + 1
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
    quadrants = ((w1, np.s_[0:y, 0:x]), (w2, np.s_[0:y, x:w]),
                 (w3, np.s_[y:h, 0:x]), (w4, np.s_[y:h, x:w]))
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
    """Structure measure (Fan et al., ICCV 2017), in [0, 1]."""
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
    """Sum of the enhanced alignment matrix from confusion counts."""
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
    mu_pred, mu_gt = pred_fg / n, n_fg / n
    terms = ((tp, 1 - mu_pred, 1 - mu_gt), (fp, 1 - mu_pred, -mu_gt),
             (fn, -mu_pred, 1 - mu_gt), (tn, -mu_pred, -mu_gt))
    total = 0.0
    for count, a, b in terms:
        align = 2.0 * a * b / (a * a + b * b + EPS)
        total = total + count * (align + 1.0)**2 / 4.0
    return total


def e_measure_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(256,) E-measures (Fan et al., IJCAI 2018) at thresholds 255..0."""
    n, n_fg = gt.size, int(np.count_nonzero(gt))
    q = (pred * 255).astype(np.uint8).ravel().astype(np.intp)
    # Joint histogram: bins 0..255 are GT background, 256..511 foreground.
    hist = np.bincount(q + 256 * gt.ravel(), minlength=512)
    tp = np.cumsum(hist[:255:-1])
    fp = np.cumsum(hist[255::-1])
    score = _enhanced_alignment_sum(
        tp.astype(np.float64), fp.astype(np.float64), n_fg, n)
    return np.asarray(score, dtype=np.float64) / (n - 1 + EPS)


def e_measure_adaptive(pred: np.ndarray, gt: np.ndarray) -> float:
    """E-measure at the threshold ``min(2 * mean(pred), 1)``."""
    n, n_fg = gt.size, int(np.count_nonzero(gt))
    binary = pred >= min(2.0 * pred.mean(), 1.0)
    tp = float(np.count_nonzero(binary & gt))
    fp = float(np.count_nonzero(binary & ~gt))
    return float(_enhanced_alignment_sum(tp, fp, n_fg, n) / (n - 1 + EPS))


def matlab_gaussian_kernel(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``."""
    r = (size - 1) / 2
    x = np.arange(-r, r + 1)
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def weighted_f_measure(pred: np.ndarray,
                       gt: np.ndarray,
                       beta2: float = 1.0) -> float:
    """Weighted F-measure (Margolin et al., CVPR 2014); 0 for an empty GT."""
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
    """Mean absolute error of the prepared map against the GT."""
    return float(np.abs(pred - gt).mean())


def binary_counts(pred: np.ndarray,
                  gt: np.ndarray,
                  valid: np.ndarray = None) -> Dict[str, int]:
    """``tp``, ``fp``, ``fn``, ``tn`` of two bool maps over ``valid``."""
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    tn = int(pred.size) - tp - fp - fn
    return dict(tp=tp, fp=fp, fn=fn, tn=tn)


def ratio(num: ArrayOrFloat, denom: ArrayOrFloat, empty: float) -> np.ndarray:
    """``num / denom`` in float64, ``empty`` where ``denom`` is 0."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(denom > 0, np.float64(num) / denom, empty)


def stack_counts(results: list) -> Dict[str, np.ndarray]:
    """``tp``, ``fp``, ``fn``, ``tn`` of per-image count dicts as (N, )
    float64 arrays."""
    return {
        k: np.array([r[k] for r in results], dtype=np.float64)
        for k in ('tp', 'fp', 'fn', 'tn')
    }


def ber_from_counts(tp: ArrayOrFloat, fp: ArrayOrFloat, fn: ArrayOrFloat,
                    tn: ArrayOrFloat) -> Tuple[ArrayOrFloat, ...]:
    """``(ber, pos_err, neg_err)`` in percent, element-wise; NaN for an
    absent class."""
    pos_err = 100.0 * (1.0 - ratio(tp, tp + fn, np.nan))
    neg_err = 100.0 * (1.0 - ratio(tn, tn + fp, np.nan))
    ber = (pos_err + neg_err) / 2.0
    if ber.ndim == 0:
        return float(ber), float(pos_err), float(neg_err)
    return ber, pos_err, neg_err


def iou_from_counts(tp, fp, fn):
    """IoU ``TP / (TP + FP + FN)``; 1.0 when both maps are empty."""
    return ratio(tp, tp + fp + fn, 1.0)


def dice_from_counts(tp, fp, fn):
    """Dice ``2 TP / (2 TP + FP + FN)``; 1.0 when both are empty."""
    return ratio(2 * tp, 2 * tp + fp + fn, 1.0)


def acc_from_counts(tp, fp, fn, tn):
    """Pixel accuracy ``(TP + TN) / N``; NaN without pixels."""
    return ratio(tp + tn, tp + fp + fn + tn, np.nan)


def threshold_jaccard(jaccard, threshold: float = 0.65):
    """ISIC 2018 thresholded Jaccard: values below the cut become 0."""
    jaccard = np.asarray(jaccard, dtype=np.float64)
    return np.where(jaccard < threshold, 0.0, jaccard)


def confusion_matrix(pred: np.ndarray,
                     gt: np.ndarray,
                     num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """(K, K) int64 confusion matrix of one image (rows: GT)."""
    gt = gt.ravel().astype(np.int64)
    pred = pred.ravel().astype(np.int64)
    # Out-of-range GT labels other than ignore_index are dropped with it,
    # like mmseg's IoUMetric does through its ignore mask.
    valid = (gt != ignore_index) & (gt >= 0) & (gt < num_classes)
    index = gt[valid] * num_classes + pred[valid]
    return np.bincount(
        index,
        minlength=num_classes * num_classes).reshape(num_classes, num_classes)
