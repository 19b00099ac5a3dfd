"""Per-image kernels against values worked out by hand.

The reference GT used throughout is the 4x4 map

    1 1 1 0
    1 1 1 0
    1 1 1 0
    0 0 0 0

(9 foreground pixels of N = 16). Its centroid is column 1, row 1 (0-based),
so the toolkits' 1-based split point is X = Y = 2 and the S-measure region
term splits it into four 2x2 quadrants of weight 4/16 each:

    LT = [[1, 1], [1, 1]]   RT = [[1, 0], [1, 0]]
    LB = [[1, 1], [0, 0]]   RB = [[1, 0], [0, 0]]
"""
import numpy as np
import pytest

import mmseg_convlora  # noqa: F401
from mmseg_convlora.evaluation.metrics import functional as F

EPS = np.spacing(1)
N = 16


def gt_l():
    gt = np.zeros((4, 4), dtype=bool)
    gt[:3, :3] = True
    return gt


def g7():
    """The 1-D factor of fspecial('gaussian', 7, 5): exp(-k^2 / 50),
    k = -3..3, normalised to sum 1."""
    k = np.arange(-3, 4)
    g = np.exp(-k**2 / 50.0)
    return g / g.sum()


# ---------------------------------------------------------------- prepare
def test_prepare_stretches_and_binarises():
    pred = np.array([[0.2, 0.6], [0.4, 0.2]])
    p, g = F.prepare_sod_inputs(pred, np.array([[1, 0], [1, 1]]))
    # (x - 0.2) / (0.6 - 0.2)
    np.testing.assert_allclose(p, [[0, 1], [0.5, 0]])
    assert g.dtype == bool and g.tolist() == [[True, False], [True, True]]
    # A constant map is left as it is (no division by zero).
    p, _ = F.prepare_sod_inputs(np.full((2, 2), 0.3), np.zeros((2, 2)))
    np.testing.assert_allclose(p, 0.3)


# --------------------------------------------------------------- S-measure
def test_s_measure_empty_gt():
    # Special case y == 0: S = 1 - mean(pred).
    assert F.s_measure(np.full((4, 4), 0.3), np.zeros((4, 4), bool)) == \
        pytest.approx(0.7)
    pred = np.zeros((4, 4))
    pred[0, 0] = 1.0
    assert F.s_measure(pred, np.zeros((4, 4), bool)) == \
        pytest.approx(1 - 1 / 16)
    # Prediction equal to the (empty) GT.
    assert F.s_measure(np.zeros((4, 4)), np.zeros((4, 4), bool)) == 1.0


def test_s_measure_full_gt():
    # Special case y == 1: S = mean(pred).
    assert F.s_measure(np.full((4, 4), 0.3), np.ones((4, 4), bool)) == \
        pytest.approx(0.3)
    assert F.s_measure(np.ones((4, 4)), np.ones((4, 4), bool)) == 1.0
    assert F.s_measure(np.zeros((4, 4)), np.ones((4, 4), bool)) == 0.0


def test_s_measure_pred_equals_gt():
    # Object: x = 1, sigma = 0 on both sides -> 2 / (1 + 1) = 1.
    # Region: every quadrant has x = y and sigma_x = sigma_y = sigma_xy, so
    # alpha = beta (or both 0 on constant quadrants) -> 1.
    gt = gt_l()
    assert F.s_measure(gt.astype(float), gt) == pytest.approx(1.0, abs=1e-12)


def test_s_measure_constant_prediction():
    # pred = 0.5 everywhere.
    # Object: both sides x = 0.5, sigma = 0: 2 * 0.5 / (0.25 + 1) = 0.8.
    # Region: LT (gt constant 1, pred constant): alpha = 0, beta =
    # (0.25 + 1) * 0 = 0 -> 1. RT, LB, RB: sigma_x = 0 so alpha = 0, but
    # sigma_y > 0 so beta > 0 -> 0. Region = 0.25 * 1 = 0.25.
    # S = 0.5 * 0.8 + 0.5 * 0.25 = 0.525.
    assert F.s_measure(np.full((4, 4), 0.5), gt_l()) == pytest.approx(0.525)


def test_s_measure_inverted_prediction_is_clipped_at_zero():
    # pred = 1 - gt. Object: fg x = 0 and bg (1 - pred) x = 0 -> 0.
    # Region: LT constant (pred 0, gt 1): alpha = beta = 0 -> 1.
    # RT: x = y = 0.5, sigma_x = sigma_y = 1/3, sigma_xy = -1/3,
    #     alpha = 4 * .25 * (-1/3) = -1/3, beta = 0.5 * 2/3 = 1/3 -> -1.
    # LB: the same by symmetry -> -1.
    # RB: gt = [[1,0],[0,0]]: y = 1/4, x = 3/4, sigma_x = sigma_y = 1/4,
    #     sigma_xy = (-(3/4)^2 - 3 (1/4)^2) / 3 = -1/4,
    #     alpha = 4 * 3/16 * (-1/4) = -3/16, beta = 10/16 * 1/2 = 5/16
    #     -> -0.6.
    # Region = (1 - 1 - 1 - 0.6) / 4 = -0.4; S = max(0, 0.5 * -0.4) = 0.
    gt = gt_l()
    assert F.s_measure(1.0 - gt, gt) == 0.0
    # The unclipped region term itself.
    assert F._s_region(1.0 - gt, gt) == pytest.approx(-0.4)


def test_s_measure_graded_prediction():
    # pred = gt except pred[0, 0] = 0.5 (min 0, max 1: no stretch).
    # Object fg values: eight 1s and one 0.5 -> x = 17/18; sample variance
    # (8 (1/18)^2 + (8/18)^2) / 8 = 1/36 -> sigma = 1/6;
    # fg = 2 (17/18) / ((17/18)^2 + 1 + 1/6) = 612/667. bg: 1 - 0 = 1 -> 1.
    # object = 9/16 * 612/667 + 7/16.
    # Region: LT = [[0.5, 1], [1, 1]] vs all-1 GT: sigma_y = sigma_xy = 0 ->
    # alpha = 0, sigma_x > 0 -> beta > 0 -> 0. Others equal the GT -> 1.
    # region = 3/4.
    gt = gt_l()
    pred = gt.astype(float)
    pred[0, 0] = 0.5
    expected = 0.5 * (9 / 16 * 612 / 667 + 7 / 16) + 0.5 * 0.75
    assert F.s_measure(pred, gt) == pytest.approx(expected, rel=1e-12)


def test_s_measure_centroid_rounding_and_degenerate_quadrants():
    # GT = left two columns of a 4x4: column mean 0.5 rounds (half to even,
    # like numpy / the port) to 0 -> X = 1; row mean 1.5 rounds to 2 -> Y =
    # 3. The LB quadrant is one pixel: MATLAB's N - 1 + eps normaliser makes
    # it score 1 for any pred (alpha = beta = 0).
    gt = np.zeros((4, 4), bool)
    gt[:, :2] = True
    assert F._centroid(gt) == (1, 3)
    # Single foreground pixel in the last column: X = 4 = W, the RT / RB
    # quadrants are empty (weight 0) and must not produce NaN.
    gt = np.zeros((4, 4), bool)
    gt[1, 3] = True
    assert F._centroid(gt) == (4, 2)
    pred = gt.astype(float)
    assert F.s_measure(pred, gt) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------- E-measure
def test_e_measure_pred_equals_gt():
    # Thresholds 255..1 reproduce the GT: TP = 9, TN = 7, both alignment
    # values are 1 -> sum 16, E = 16 / (16 - 1). Threshold 0 predicts all
    # foreground: mu_pred = 1, the TP and FP cells have a = 0 -> alignment 0,
    # enhanced 1/4 -> sum 16/4 = 4, E = 4/15.
    gt = gt_l()
    curve = F.e_measure_curve(gt.astype(float), gt)
    assert curve.shape == (256, )
    np.testing.assert_allclose(curve[:255], 16 / 15)
    assert curve[255] == pytest.approx(4 / 15)
    assert curve.max() == pytest.approx(16 / 15)  # toolkits' N / (N - 1)
    assert curve.mean() == pytest.approx((255 * 16 + 4) / (15 * 256))
    # Adaptive threshold min(2 * 9/16, 1) = 1 -> the GT again.
    assert F.e_measure_adaptive(gt.astype(float), gt) == \
        pytest.approx(16 / 15)


def test_e_measure_inverted_prediction():
    # Thresholds 255..1 give ~GT: FP = 7, FN = 9, mu_pred = 7/16.
    # FP cell: a = 9/16, b = -9/16 -> alignment -1 -> enhanced 0; FN cell:
    # a = -7/16, b = 7/16 -> 0. Sum 0. Threshold 0: 4/15 as above.
    gt = gt_l()
    curve = F.e_measure_curve(1.0 - gt, gt)
    np.testing.assert_allclose(curve[:255], 0, atol=1e-15)
    assert curve[255] == pytest.approx(4 / 15)
    # Adaptive threshold 2 * 7/16 = 7/8 -> ~GT -> 0.
    assert F.e_measure_adaptive(1.0 - gt, gt) == pytest.approx(0, abs=1e-15)


def test_e_measure_constant_prediction():
    # pred = 0.5 -> uint8(127.5) = 127. Thresholds 255..128 predict nothing:
    # mu_pred = 0, FN (a = 0) and TN (a = 0) cells -> alignment 0 ->
    # 1/4 each -> sum 4. Thresholds 127..0 predict everything -> sum 4.
    gt = gt_l()
    curve = F.e_measure_curve(np.full((4, 4), 0.5), gt)
    np.testing.assert_allclose(curve, 4 / 15)
    # Adaptive threshold min(1, 1) = 1 > 0.5: nothing predicted -> 4/15.
    assert F.e_measure_adaptive(np.full((4, 4), 0.5), gt) == \
        pytest.approx(4 / 15)


def test_e_measure_graded_prediction():
    # pred = gt, plus background pixel (3, 3) at 0.5 (-> 127).
    # Thresholds 255..128 (128 of them): the GT -> 16/15.
    # Thresholds 127..1 (127): TP 9, FP 1, FN 0, TN 6, mu_pred = 10/16,
    # mu_gt = 9/16:
    #   TP: a = 6/16, b = 7/16: align = 2*42 / (36+49) = 84/85,
    #       enhanced = (169/85)^2 / 4
    #   FP: a = 6/16, b = -9/16: align = -108/117 = -12/13,
    #       enhanced = (1/13)^2 / 4
    #   TN: a = -10/16, b = -9/16: align = 180/181,
    #       enhanced = (361/181)^2 / 4
    # Threshold 0: 4/15.
    gt = gt_l()
    pred = gt.astype(float)
    pred[3, 3] = 0.5
    mid = (9 * (169 / 85)**2 / 4 + 1 * (1 / 13)**2 / 4 + 6 *
           (361 / 181)**2 / 4) / 15
    curve = F.e_measure_curve(pred, gt)
    np.testing.assert_allclose(curve[:128], 16 / 15)
    np.testing.assert_allclose(curve[128:255], mid)
    assert curve[255] == pytest.approx(4 / 15)
    # Adaptive: mean = 9.5/16, threshold min(19/16, 1) = 1 -> the GT.
    assert F.e_measure_adaptive(pred, gt) == pytest.approx(16 / 15)


def test_e_measure_quantisation_truncates():
    # uint8(0.5 * 255) = uint8(127.5) = 127 (truncation, not rounding), so
    # the pixel is predicted from threshold 127 down, not at 128.
    gt = np.zeros((2, 2), bool)
    gt[0, 0] = True
    pred = np.array([[0.5, 0.0], [0.0, 1.0]])
    curve = F.e_measure_curve(pred, gt)
    # Index i is threshold 255 - i.
    assert curve[255 - 128] == curve[255 - 200]
    assert curve[255 - 127] != curve[255 - 128]


def test_e_measure_empty_and_full_gt():
    empty = np.zeros((4, 4), bool)
    # All-zero GT: enhanced matrix sum = number of predicted background
    # pixels. pred == GT (all 0): thresholds 255..1 -> 16/15, threshold 0
    # -> 0. Adaptive threshold 2 * 0 = 0 -> everything foreground -> 0 (a
    # quirk of the toolkits, kept for parity).
    curve = F.e_measure_curve(np.zeros((4, 4)), empty)
    np.testing.assert_allclose(curve[:255], 16 / 15)
    assert curve[255] == 0
    assert F.e_measure_adaptive(np.zeros((4, 4)), empty) == 0
    # One false-positive pixel: 15 background pixels at thresholds 255..1.
    pred = np.zeros((4, 4))
    pred[0, 0] = 1
    np.testing.assert_allclose(F.e_measure_curve(pred, empty)[:255], 1.0)
    # Adaptive: threshold 2/16 -> the one pixel -> 15/15.
    assert F.e_measure_adaptive(pred, empty) == pytest.approx(1.0)
    # All-one GT, constant 0.3 -> uint8 76: thresholds 76..0 (77 of them)
    # predict all 16 pixels -> 16/15, the others 0.
    full = np.ones((4, 4), bool)
    curve = F.e_measure_curve(np.full((4, 4), 0.3), full)
    assert curve.mean() == pytest.approx(77 * 16 / 15 / 256)
    # Adaptive threshold 0.6 > 0.3 -> nothing predicted -> 0.
    assert F.e_measure_adaptive(np.full((4, 4), 0.3), full) == 0


# ------------------------------------------------------- weighted F-measure
def test_weighted_f_pred_equals_gt_and_empty_gt():
    gt = gt_l()
    # No error anywhere: R = 1, P = 9 / (9 + eps) -> 1.
    assert F.weighted_f_measure(gt.astype(float), gt) == \
        pytest.approx(1.0, abs=1e-12)
    # The toolkits score an all-background GT as 0, whatever the prediction.
    empty = np.zeros((4, 4), bool)
    assert F.weighted_f_measure(np.zeros((4, 4)), empty) == 0.0


def test_weighted_f_full_gt_constant_prediction():
    # All-one GT: no background, so B = 1, FPw = 0 and P = 1. E = 1 - c.
    # The Gaussian smoothing with zero padding gives
    # EA(i, j) = (1 - c) s(i) s(j), s(i) = sum of the 1-D taps falling
    # inside the image; EA < E, so MIN_E_EA = EA.
    # R = 1 - mean(EA), Q = (1 + b2) R / (R + b2).
    g = g7()
    # Taps at offsets -3..3 are g[0..6]; pixel i sees offsets -i..3-i.
    s = np.array([g[3 - i:7 - i].sum() for i in range(4)])
    for c, b2 in ((0.3, 1.0), (0.0, 0.3)):
        r = 1 - (1 - c) * np.outer(s, s).mean()
        expected = (1 + b2) * r / (r + b2)
        got = F.weighted_f_measure(
            np.full((4, 4), c), np.ones((4, 4), bool), beta2=b2)
        assert got == pytest.approx(expected, rel=1e-12)


def test_weighted_f_false_positive_distance_weight():
    # 1x5 image, GT [1 0 0 0 0], pred [1 1 0 0 0]: E = [0 1 0 0 0].
    # Background errors are replaced by the nearest foreground error (0),
    # so EA = 0; the foreground keeps E = 0. The false positive at distance
    # 1 gets weight B = 2 - exp(ln(0.5) / 5 * 1) = 2 - 0.5^0.2.
    # TPw = 1, FPw = B, R = 1, P = 1 / (1 + B), Q = 2 P / (1 + P).
    gt = np.array([[1, 0, 0, 0, 0]], bool)
    pred = np.array([[1.0, 1.0, 0, 0, 0]])
    b = 2 - 0.5**0.2
    p = 1 / (1 + b)
    assert F.weighted_f_measure(pred, gt) == pytest.approx(2 * p / (1 + p))


def test_weighted_f_false_negative_dependency():
    # 1x5 image, GT [1 1 0 0 0], pred [1 0 0 0 0]: E = [0 1 0 0 0].
    # Et: background pixels 2, 3, 4 take the error of their nearest
    # foreground pixel (pixel 1): Et = [0 1 1 1 1].
    # EA(1) = g[3] (vertical: only the centre tap is inside a 1-row image)
    #         * (g[2]*Et[0] + g[3]*Et[1] + g[4]*Et[2] + g[5]*Et[3] +
    #            g[6]*Et[4]) = g[3] (g[3] + g[4] + g[5] + g[6]) < 1 = E(1).
    # Foreground errors [0, EA(1)], background errors 0:
    # TPw = 2 - EA(1), FPw = 0 -> P = 1, R = 1 - EA(1)/2, Q = 2R / (R + 1).
    g = g7()
    ea1 = g[3] * (g[3] + g[4] + g[5] + g[6])
    r = 1 - ea1 / 2
    gt = np.array([[1, 1, 0, 0, 0]], bool)
    pred = np.array([[1.0, 0, 0, 0, 0]])
    assert F.weighted_f_measure(pred, gt) == pytest.approx(2 * r / (r + 1))
    # beta^2 = 0.3 (Conv-LoRA paper): Q = 1.3 R / (R + 0.3).
    assert F.weighted_f_measure(pred, gt, beta2=0.3) == \
        pytest.approx(1.3 * r / (r + 0.3))


def test_gaussian_kernel_matches_fspecial():
    g = F.matlab_gaussian_kernel(7, 5.0)
    k2 = np.outer(g, g)
    y, x = np.mgrid[-3:4, -3:4]
    h = np.exp(-(x**2 + y**2) / 50.0)
    np.testing.assert_allclose(k2, h / h.sum(), rtol=1e-14)


# --------------------------------------------------------------------- MAE
def test_mae():
    gt = gt_l()
    assert F.mae(gt.astype(float), gt) == 0
    assert F.mae(1.0 - gt, gt) == 1
    # Constant 0.3: 9 pixels off by 0.7, 7 by 0.3.
    assert F.mae(np.full((4, 4), 0.3), gt) == \
        pytest.approx((9 * 0.7 + 7 * 0.3) / 16)


# ------------------------------------------------------- counts and rates
def test_binary_counts_and_rates():
    gt = gt_l()
    pred = gt.copy()
    pred[0, 0] = False  # FN
    pred[3, 3] = True  # FP
    pred[3, 2] = True  # FP
    valid = np.ones((4, 4), bool)
    valid[3, 2] = False  # ignored: its FP does not count
    c = F.binary_counts(pred, gt, valid)
    assert c == dict(tp=8, fp=1, fn=1, tn=5)
    # BER = 100 (1 - (8/9 + 5/6) / 2)
    ber, pos, neg = F.ber_from_counts(**c)
    assert ber == pytest.approx(100 * (1 - (8 / 9 + 5 / 6) / 2))
    assert pos == pytest.approx(100 / 9)
    assert neg == pytest.approx(100 / 6)
    assert F.iou_from_counts(8, 1, 1) == pytest.approx(0.8)
    assert F.dice_from_counts(8, 1, 1) == pytest.approx(16 / 18)
    assert F.acc_from_counts(8, 1, 1, 5) == pytest.approx(13 / 15)
    # Empty GT and empty prediction count as a perfect 1.
    assert F.iou_from_counts(0, 0, 0) == 1.0
    assert F.dice_from_counts(0, 0, 0) == 1.0
    np.testing.assert_array_equal(
        F.threshold_jaccard([0.64, 0.65, 0.9]), [0, 0.65, 0.9])
    # Undefined halves are NaN, and make BER NaN.
    ber, pos, neg = F.ber_from_counts(0, 1, 0, 3)
    assert np.isnan(ber) and np.isnan(pos) and neg == pytest.approx(25.0)


def test_confusion_matrix_excludes_ignore():
    gt = np.array([[0, 1], [2, 255]])
    pred = np.array([[0, 2], [2, 1]])
    conf = F.confusion_matrix(pred, gt, 3)
    expected = np.zeros((3, 3), int)
    expected[0, 0] = expected[1, 2] = expected[2, 2] = 1
    np.testing.assert_array_equal(conf, expected)
