"""BERMetric (dataset-level, SBU) and BERPerImageMetric, by hand."""
import numpy as np
import pytest
from mmseg.registry import METRICS  # noqa: E402  (after the plugin)

from mmseg_convlora.evaluation.metrics import BERMetric, BERPerImageMetric
from helpers import evaluate_metric, gt_l, metric_sample


def test_threshold_125_of_255_and_ignore():
    gt = gt_l()
    gt[3, 3] = 255  # ignored: Np = 9, Nn = 6
    # 125/255 = 0.4902: 0.5 is shadow, 0.49 is not.
    prob = np.where(gt == 1, 0.5, 0.0)
    prob[0, 0] = 0.49  # FN
    prob[3, 0] = 0.5  # FP
    prob[3, 3] = 1.0  # would be a FP, but the pixel is ignored
    metric = BERMetric()
    res = evaluate_metric(metric, [metric_sample(prob, gt)])
    assert metric.results == [dict(tp=8, fp=1, fn=1, tn=5)]
    assert res['shadow_BER'] == pytest.approx(100 * (1 - 8 / 9))
    assert res['non_shadow_BER'] == pytest.approx(100 * (1 - 5 / 6))
    assert res['BER'] == pytest.approx(100 * (1 - (8 / 9 + 5 / 6) / 2))


def test_edge_cases():
    gt = gt_l()
    # Prediction equal to the GT.
    res = evaluate_metric(BERMetric(), [metric_sample(gt * 1.0, gt)])
    assert res == dict(BER=0.0, shadow_BER=0.0, non_shadow_BER=0.0)
    # Prediction equal to 1 - GT: every pixel wrong.
    res = evaluate_metric(BERMetric(), [metric_sample(1.0 - gt, gt)])
    assert res == dict(BER=100.0, shadow_BER=100.0, non_shadow_BER=100.0)
    # Constant "no shadow": all shadow pixels missed, none falsely flagged.
    res = evaluate_metric(BERMetric(), [metric_sample(np.zeros((4, 4)), gt)])
    assert res == dict(BER=50.0, shadow_BER=100.0, non_shadow_BER=0.0)
    # A test set without shadow: the shadow term is undefined.
    res = evaluate_metric(BERMetric(),
                          [metric_sample(np.zeros((4, 4)), gt * 0)])
    assert np.isnan(res['BER']) and np.isnan(res['shadow_BER'])
    assert res['non_shadow_BER'] == 0.0


def test_dataset_level_vs_per_image():
    # Image A (4x4, Np 9, Nn 7): perfect -> errors 0 and 0, BER 0.
    # Image B (2x2): GT [[1, 0], [0, 0]], prediction all background:
    #   TP 0 / Np 1 -> shadow error 100; TN 3 / Nn 3 -> 0; BER 50.
    gt_a = gt_l()
    gt_b = np.array([[1, 0], [0, 0]])
    samples = [
        metric_sample(gt_a * 1.0, gt_a),
        metric_sample(np.zeros((2, 2)), gt_b)
    ]
    # Dataset level: TP 9 / Np 10, TN 10 / Nn 10.
    # shadow 100 (1 - 9/10) = 10, non-shadow 0, BER (10 + 0) / 2 = 5.
    # (both metrics built by their registry names, as configs do)
    res = evaluate_metric(METRICS.build(dict(type='BERMetric')), samples)
    assert res['BER'] == pytest.approx(5.0)
    assert res['shadow_BER'] == pytest.approx(10.0)
    assert res['non_shadow_BER'] == 0.0
    # Per image: BER (0 + 50) / 2 = 25, shadow (0 + 100) / 2 = 50.
    res = evaluate_metric(
        METRICS.build(dict(type='BERPerImageMetric')), samples)
    assert res == dict(
        BER_per_image=pytest.approx(25.0),
        shadow_BER_per_image=pytest.approx(50.0),
        non_shadow_BER_per_image=0.0)


def test_per_image_without_shadow():
    # Image A perfect (errors 0, 0). Image C: no shadow in the GT, one of
    # four pixels flagged -> non-shadow error 25, shadow error undefined.
    # C's BER is its one defined error (25); the shadow mean uses A only.
    gt_a = gt_l()
    prob_c = np.array([[1.0, 0], [0, 0]])
    res = evaluate_metric(BERPerImageMetric(), [
        metric_sample(gt_a * 1.0, gt_a),
        metric_sample(prob_c, np.zeros((2, 2), np.int64))
    ])
    assert res['BER_per_image'] == pytest.approx((0 + 25) / 2)
    assert res['shadow_BER_per_image'] == 0.0
    assert res['non_shadow_BER_per_image'] == pytest.approx((0 + 25) / 2)


@pytest.mark.parametrize('classes,keys', [
    (('background', 'polyp'), ('polyp_BER', 'background_BER')),
    (('non-shadow', 'shadow'), ('shadow_BER', 'non_shadow_BER')),
    (('background', 'foreground'), ('foreground_BER', 'background_BER')),
])
def test_per_class_keys_are_named_by_the_dataset(classes, keys):
    """No ``shadow_BER`` for polyps: the keys follow the dataset's classes
    (background first); the values are the foreground / background errors.
    """
    for cls, suffix in ((BERMetric, ''), (BERPerImageMetric, '_per_image')):
        metric = cls()
        metric.dataset_meta = dict(classes=classes)
        # 1 of 4 foreground pixels missed, no false positive
        res = metric.compute_metrics([dict(tp=3, fn=1, fp=0, tn=4)])
        fg, bg = (k + suffix for k in keys)
        assert set(res) == {'BER' + suffix, fg, bg}
        assert res[fg] == pytest.approx(25.0) and res[bg] == 0.0
