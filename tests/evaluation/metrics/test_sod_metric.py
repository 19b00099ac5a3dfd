"""SODMetric on data samples, values worked out by hand.

GT used (4x4, 9 foreground pixels of 16):

    1 1 1 0
    1 1 1 0
    1 1 1 0
    0 0 0 0

See test_metric_functional.py for the derivation of each per-image value.
"""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.registry import METRICS  # noqa: E402  (after the plugin)
from mmseg.structures import SegDataSample  # noqa: E402

from mmseg_convlora.evaluation.metrics import SODMetric
from helpers import evaluate_metric, gt_l, metric_sample


def test_pred_equals_gt():
    gt = gt_l()
    # (built by its registry name, as configs do)
    res = evaluate_metric(
        METRICS.build(dict(type='SODMetric')),
        [metric_sample(gt.astype(float), gt)])
    assert set(res) == {'Sm', 'meanEm', 'maxEm', 'adpEm', 'wFm', 'MAE'}
    assert res['Sm'] == pytest.approx(1.0, abs=1e-7)
    assert res['wFm'] == pytest.approx(1.0, abs=1e-7)
    assert res['MAE'] == 0
    # The toolkits normalise E by N - 1: a perfect map gets N / (N - 1) at
    # every threshold but 0, where the all-foreground map scores 4/15.
    assert res['maxEm'] == pytest.approx(16 / 15)
    assert res['adpEm'] == pytest.approx(16 / 15)
    assert res['meanEm'] == pytest.approx((255 * 16 + 4) / (15 * 256))


def test_reads_probabilities_not_thresholded_map():
    gt = gt_l()
    # Constant 0.5 probability while pred_sem_seg claims the GT exactly.
    # MAE = 0.5 everywhere; S = 0.5 * 0.8 + 0.5 * 0.25 = 0.525.
    res = evaluate_metric(
        SODMetric(), [metric_sample(np.full((4, 4), 0.5), gt, pred=gt[None])])
    assert res['MAE'] == pytest.approx(0.5)
    assert res['Sm'] == pytest.approx(0.525)
    # Constant map: every threshold gives 4/15 (see functional tests).
    assert res['meanEm'] == pytest.approx(4 / 15)


def test_min_max_stretch():
    gt = gt_l()
    # 0.1 + 0.8 gt stretches back to gt exactly.
    res = evaluate_metric(SODMetric(), [metric_sample(0.1 + 0.8 * gt, gt)])
    assert res['MAE'] == pytest.approx(0, abs=1e-7)
    assert res['Sm'] == pytest.approx(1, abs=1e-7)


def test_inverted_prediction():
    gt = gt_l()
    res = evaluate_metric(SODMetric(), [metric_sample(1.0 - gt, gt)])
    assert res['MAE'] == 1.0
    assert res['Sm'] == 0.0  # clipped, region term is -0.4
    assert res['maxEm'] == pytest.approx(4 / 15)  # only threshold 0
    assert res['adpEm'] == pytest.approx(0, abs=1e-12)
    # Every pixel is wrong (E = 1, so Et = 1 too). Smoothing with zero
    # padding gives EA(i, j) = s(i) s(j) (s = 1-D taps inside the image),
    # which is < 1, so the foreground keeps EA. Background keeps E = 1 times
    # B = 2 - 0.5^(d / 5): six pixels at d = 1, one at d = sqrt(2).
    k = np.arange(-3, 4)
    g = np.exp(-k**2 / 50.0)
    g /= g.sum()
    s = np.array([g[3 - i:7 - i].sum() for i in range(4)])
    ea_fg = s[:3].sum()**2
    tp_w = 9 - ea_fg
    fp_w = 6 * (2 - 0.5**0.2) + (2 - 0.5**(np.sqrt(2) / 5))
    r = 1 - ea_fg / 9
    p = tp_w / (tp_w + fp_w)
    assert res['wFm'] == pytest.approx(2 * r * p / (r + p), rel=1e-6)


def test_empty_and_full_gt():
    empty = np.zeros((4, 4), np.int64)
    res = evaluate_metric(SODMetric(),
                          [metric_sample(np.zeros((4, 4)), empty)])
    assert res['Sm'] == 1.0 and res['MAE'] == 0.0
    assert res['wFm'] == 0.0  # toolkit convention for an empty GT
    assert res['maxEm'] == pytest.approx(16 / 15)
    full = np.ones((4, 4), np.int64)
    res = evaluate_metric(SODMetric(),
                          [metric_sample(np.full((4, 4), 0.3), full)])
    assert res['Sm'] == pytest.approx(0.3)
    assert res['MAE'] == pytest.approx(0.7)
    assert res['meanEm'] == pytest.approx(77 * 16 / 15 / 256)


def test_em_curve_averaged_before_max():
    # Image A = GT (curve 16/15 at thresholds 255..1), image B = 1 - GT
    # (curve 0 there); both 4/15 at threshold 0. The mean curve peaks at
    # 8/15, whereas the mean of the per-image maxima would be
    # (16/15 + 4/15) / 2 = 10/15. The toolkits take the max of the mean.
    gt = gt_l()
    res = evaluate_metric(
        SODMetric(),
        [metric_sample(gt.astype(float), gt),
         metric_sample(1.0 - gt, gt)])
    assert res['maxEm'] == pytest.approx(8 / 15)
    assert res['meanEm'] == pytest.approx((255 * 8 + 4) / (15 * 256))
    assert res['Sm'] == pytest.approx(0.5, abs=1e-7)
    assert res['MAE'] == pytest.approx(0.5)


def test_beta2_reaches_weighted_f():
    # 1x5 case of test_metric_functional: GT [1 1 0 0 0], pred [1 0 0 0 0],
    # R = 1 - EA(1)/2, P = 1; Q = (1 + b2) R / (R + b2).
    k = np.arange(-3, 4)
    g = np.exp(-k**2 / 50.0)
    g /= g.sum()
    r = 1 - g[3] * (g[3] + g[4] + g[5] + g[6]) / 2
    gt = np.array([[1, 1, 0, 0, 0]])
    pred = np.array([[1.0, 0, 0, 0, 0]])
    res = evaluate_metric(
        SODMetric(sod_metrics=['wFm'], beta2=0.3), [metric_sample(pred, gt)])
    assert res == {'wFm': pytest.approx(1.3 * r / (r + 0.3), rel=1e-6)}


def test_ignore_scored_as_background():
    gt = gt_l()
    gt_ign = gt.copy()
    gt_ign[3, 3] = 255
    pred = np.full((4, 4), 0.3)
    pred[0, 0] = 0.9
    a = evaluate_metric(SODMetric(), [metric_sample(pred, gt)])
    b = evaluate_metric(SODMetric(), [metric_sample(pred, gt_ign)])
    assert a == b


def test_metric_subset_and_errors():
    gt = gt_l()
    res = evaluate_metric(
        SODMetric(sod_metrics=['Sm', 'MAE']), [metric_sample(gt * 1.0, gt)])
    assert set(res) == {'Sm', 'MAE'}
    with pytest.raises(KeyError):
        SODMetric(sod_metrics=['Fm'])
    # Logits where probabilities are required.
    with pytest.raises(ValueError, match='probabilities'):
        evaluate_metric(SODMetric(), [metric_sample(gt * 5.0 - 2, gt)])
    # 0/255 masks fed raw.
    with pytest.raises(ValueError, match='GT labels'):
        evaluate_metric(SODMetric(), [metric_sample(gt * 1.0, gt * 2)])
    # No probabilities at all.
    s = metric_sample(gt * 1.0, gt)
    del s['seg_logits']
    with pytest.raises(KeyError, match='seg_logits'):
        evaluate_metric(SODMetric(), [s])


def test_evaluator_with_ber_and_prefix():
    """SOD metrics and BER side by side in one mmengine Evaluator, fed
    SegDataSample objects as mmseg's test loop does."""
    gt = gt_l()
    samples = []
    for prob in (gt.astype(np.float32), np.full((4, 4), 0.5, np.float32)):
        ds = SegDataSample()
        ds.seg_logits = PixelData(data=torch.from_numpy(prob)[None])
        ds.pred_sem_seg = PixelData(
            data=torch.from_numpy(prob > 0.5).long()[None])
        ds.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        samples.append(ds)
    # mmseg configs set default_scope='mmseg'; Evaluator builds from there.
    with DefaultScope.overwrite_default_scope('mmseg'):
        evaluator = Evaluator(
            [dict(type='SODMetric', prefix='sod'),
             dict(type='BERMetric')])
    evaluator.process(samples)
    res = evaluator.evaluate(2)
    assert {
        'sod/Sm', 'sod/meanEm', 'sod/wFm', 'sod/MAE', 'BER', 'shadow_BER',
        'non_shadow_BER'
    } <= set(res)
    # S: (1 + 0.525) / 2. BER: 0.5 > 125/255 so the constant image predicts
    # all shadow: TP 18, FN 0, TN 7, FP 7 -> 100 (1 - (1 + 0.5) / 2) = 25.
    assert res['sod/Sm'] == pytest.approx((1 + 0.525) / 2, abs=1e-7)
    assert res['BER'] == pytest.approx(25.0)
    assert res['shadow_BER'] == 0.0
    assert res['non_shadow_BER'] == pytest.approx(50.0)
