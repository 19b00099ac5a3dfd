"""BinarySegMetric: per-image IoU / Dice / Acc / ISIC Jaccard by hand."""
import numpy as np
import pytest
from mmseg.registry import METRICS  # noqa: E402  (after the plugin)

from mmseg_convlora.evaluation.metrics import BinarySegMetric
from helpers import evaluate_metric, gt_l, metric_sample


def test_edge_cases():
    gt = gt_l()
    keys = {'IoU', 'Dice', 'Acc', 'Jaccard', 'threshold_Jaccard'}
    res = evaluate_metric(BinarySegMetric(), [metric_sample(gt * 1.0, gt)])
    assert res == {k: 100.0 for k in keys}
    res = evaluate_metric(BinarySegMetric(), [metric_sample(1.0 - gt, gt)])
    assert res == {k: 0.0 for k in keys}
    # Empty GT and empty prediction: a perfect image.
    empty = np.zeros((4, 4), np.int64)
    res = evaluate_metric(BinarySegMetric(),
                          [metric_sample(np.zeros((4, 4)), empty)])
    assert res == {k: 100.0 for k in keys}
    # Empty GT, one false positive: IoU = Dice = 0, Acc = 15/16.
    prob = np.zeros((4, 4))
    prob[0, 0] = 0.9
    res = evaluate_metric(BinarySegMetric(), [metric_sample(prob, empty)])
    assert res['IoU'] == 0 and res['Dice'] == 0
    assert res['Acc'] == pytest.approx(100 * 15 / 16)
    # All-foreground GT, constant 0.7: everything right.
    full = np.ones((4, 4), np.int64)
    res = evaluate_metric(BinarySegMetric(),
                          [metric_sample(np.full((4, 4), 0.7), full)])
    assert res['IoU'] == 100.0
    # Threshold 0.5 is strict: a constant 0.5 predicts nothing.
    res = evaluate_metric(BinarySegMetric(),
                          [metric_sample(np.full((4, 4), 0.5), full)])
    assert res['IoU'] == 0.0


def test_per_image_mean_and_threshold_jaccard():
    # Image A (4x4): TP 8, FP 2, FN 1, TN 5:
    #   IoU 8/11 = 0.727 (>= 0.65, kept), Dice 16/19, Acc 13/16.
    gt_a = gt_l()
    prob_a = gt_a * 0.9
    prob_a[0, 0] = 0.2  # FN
    prob_a[3, 0] = prob_a[3, 3] = 0.6  # FP
    # Image B (2x2): GT [[1, 1], [0, 0]], pred [[1, 0], [1, 1]]:
    #   TP 1, FP 2, FN 1, TN 0: IoU 1/4 (< 0.65 -> 0), Dice 2/5, Acc 1/4.
    gt_b = np.array([[1, 1], [0, 0]])
    prob_b = np.array([[0.9, 0.1], [0.9, 0.9]])
    # Image C: empty GT, empty prediction -> IoU = Dice = Acc = 1.
    gt_c = np.zeros((2, 2), np.int64)
    prob_c = np.zeros((2, 2))
    # (built by its registry name, as configs do)
    res = evaluate_metric(
        METRICS.build(dict(type='BinarySegMetric')), [
            metric_sample(prob_a, gt_a),
            metric_sample(prob_b, gt_b),
            metric_sample(prob_c, gt_c)
        ])
    assert res['IoU'] == pytest.approx(100 * (8 / 11 + 1 / 4 + 1) / 3)
    assert res['Jaccard'] == res['IoU']
    assert res['threshold_Jaccard'] == pytest.approx(100 * (8 / 11 + 0 + 1) /
                                                     3)
    assert res['Dice'] == pytest.approx(100 * (16 / 19 + 2 / 5 + 1) / 3)
    assert res['Acc'] == pytest.approx(100 * (13 / 16 + 1 / 4 + 1) / 3)
    # Dataset-level sums would give IoU = 9 / (9 + 4 + 2) = 60 %, not this.
    assert res['IoU'] != pytest.approx(60.0)


def test_ignore_excluded():
    gt = gt_l()
    gt[3, :] = 255  # the bottom row is ignored
    prob = gt_l() * 1.0
    prob[3, :] = 1.0  # false positives there would count if not ignored
    res = evaluate_metric(BinarySegMetric(), [metric_sample(prob, gt)])
    assert res['IoU'] == 100.0 and res['Acc'] == 100.0
    # An image with only ignore pixels is skipped.
    res = evaluate_metric(BinarySegMetric(), [
        metric_sample(gt_l() * 1.0, gt_l()),
        metric_sample(np.ones((2, 2)), np.full((2, 2), 255))
    ])
    assert res['IoU'] == 100.0
