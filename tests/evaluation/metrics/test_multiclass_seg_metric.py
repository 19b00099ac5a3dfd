"""MultiClassSegMetric: dataset-level Acc / mIoU / MAE / mBER by hand."""
from unittest import mock

import numpy as np
import pytest
import torch
from mmseg.registry import METRICS  # noqa: E402  (after the plugin)

from mmseg_convlora.evaluation.metrics import (MultiClassSegMetric,
                                               multiclass_seg_metric)
from helpers import evaluate_metric


def sample(pred, gt, num_classes=3):
    pred = torch.as_tensor(np.asarray(pred), dtype=torch.long)
    # Scores peaked on the wanted class (soft, not one-hot).
    scores = 0.1 + 0.8 * torch.nn.functional.one_hot(
        pred, num_classes).permute(2, 0, 1).float()
    gt = torch.as_tensor(np.asarray(gt), dtype=torch.long)[None]
    return dict(
        seg_logits=dict(data=scores),
        pred_sem_seg=dict(data=pred[None]),
        gt_sem_seg=dict(data=gt))


def two_images():
    # Image 1: GT [[0, 1], [2, 2]], pred [[0, 1], [2, 0]].
    # Image 2: GT [[0, 0], [0, 255]], pred [[0, 1], [1, 2]]; the ignored
    # pixel (predicted 2) must not count anywhere.
    return [
        sample([[0, 1], [2, 0]], [[0, 1], [2, 2]]),
        sample([[0, 1], [1, 2]], [[0, 0], [0, 255]]),
    ]


def test_dataset_level_sums():
    # Summed confusion matrix (rows GT, columns prediction), n = 7:
    #   [[2, 2, 0],
    #    [0, 1, 0],
    #    [1, 0, 1]]
    # TP = [2, 1, 1], FP = [1, 2, 0], FN = [2, 0, 1], TN = [2, 4, 5].
    # aAcc = 4/7. IoU = [2/5, 1/3, 1/2].
    # BER_c = 100 (1 - (TP/Np + TN/Nn) / 2):
    #   c0: 1 - (2/4 + 2/3)/2, c1: 1 - (1/1 + 4/6)/2, c2: 1 - (1/2 + 5/5)/2.
    # MAE = mean_c (FP + FN) / n = mean([3, 2, 1]) / 7 = 2/7.
    metric = MultiClassSegMetric()
    metric.dataset_meta = dict(classes=('background', 'things', 'stuff'))
    with mock.patch.object(multiclass_seg_metric, 'print_log') as log:
        res = evaluate_metric(metric, two_images())
    assert set(res) == {'aAcc', 'mIoU', 'MAE', 'mBER'}
    assert res['aAcc'] == pytest.approx(100 * 4 / 7)
    assert res['mIoU'] == pytest.approx(100 * (2 / 5 + 1 / 3 + 1 / 2) / 3)
    bers = [1 - (2 / 4 + 2 / 3) / 2, 1 - (1 + 4 / 6) / 2, 1 - (1 / 2 + 1) / 2]
    assert res['mBER'] == pytest.approx(100 * np.mean(bers))
    assert res['MAE'] == pytest.approx(2 / 7)
    # The per-class table is logged, with the class names and IoU column.
    table = log.call_args_list[-1][0][0]
    for word in ('background', 'things', 'stuff', 'IoU', 'BER', '40.0'):
        assert word in table


def test_differs_from_per_image_mean():
    # Per image: image 1 IoU = [1/2, 1, 1/2] -> 2/3; image 2 IoU = [1/3, 0,
    # NaN (class 2 absent and not predicted)] -> 1/6; mean 5/12 = 41.67 %.
    # The metric uses dataset sums: (2/5 + 1/3 + 1/2) / 3 = 41.11 %.
    # (built by its registry name, as configs do)
    metric = METRICS.build(dict(type='MultiClassSegMetric', num_classes=3))
    res = evaluate_metric(metric, two_images())
    assert res['mIoU'] == pytest.approx(100 * 37 / 90)
    assert res['mIoU'] != pytest.approx(100 * 5 / 12, abs=0.1)


def test_edge_cases():
    gt = np.array([[0, 1], [2, 2]])
    res = evaluate_metric(MultiClassSegMetric(num_classes=3), [sample(gt, gt)])
    assert res == dict(aAcc=100.0, mIoU=100.0, MAE=0.0, mBER=0.0)
    # Class ids beyond the score channels are never predicted; a class
    # that is absent from GT and prediction is left out of mIoU and mBER.
    gt = np.array([[0, 0], [1, 1]])
    res = evaluate_metric(MultiClassSegMetric(num_classes=3), [sample(gt, gt)])
    assert res['mIoU'] == 100.0 and res['mBER'] == 0.0
    # Everything wrong.
    res = evaluate_metric(
        MultiClassSegMetric(num_classes=2),
        [sample(1 - gt, gt, num_classes=2)])
    assert res['aAcc'] == 0.0 and res['mIoU'] == 0.0
    assert res['mBER'] == 100.0 and res['MAE'] == 1.0


def test_falls_back_to_pred_sem_seg():
    s = sample([[0, 1], [2, 0]], [[0, 1], [2, 2]])
    del s['seg_logits']
    res = evaluate_metric(MultiClassSegMetric(num_classes=3), [s])
    assert res['aAcc'] == pytest.approx(75.0)


def test_miou_and_aacc_equal_mmseg_iou_metric():
    # mmseg's own IoUMetric on the same predictions: random maps with
    # ignored pixels, class 3 never in GT (IoU 0 where predicted) and
    # class 4 nowhere (left out of the mean by both). IoUMetric rounds
    # its percentages to 2 decimals.
    from mmseg.evaluation import IoUMetric
    rng = np.random.default_rng(0)
    classes = ('a', 'b', 'c', 'd', 'e')
    samples = []
    for _ in range(3):
        gt = rng.integers(0, 3, (6, 7))
        gt[rng.random((6, 7)) < 0.2] = 255
        pred = np.where(
            rng.random((6, 7)) < 0.6, gt % 255, rng.integers(0, 4, (6, 7)))
        samples.append(sample(pred, gt, num_classes=5))
    ours = MultiClassSegMetric(num_classes=5)
    ours.dataset_meta = dict(classes=classes)
    with mock.patch.object(multiclass_seg_metric, 'print_log'):
        res = evaluate_metric(ours, samples)
    ref = IoUMetric(iou_metrics=['mIoU'])
    ref.dataset_meta = dict(classes=classes)
    want = evaluate_metric(ref, samples)
    assert 0 < want['mIoU'] < 100
    assert res['mIoU'] == pytest.approx(want['mIoU'], abs=0.005)
    assert res['aAcc'] == pytest.approx(want['aAcc'], abs=0.005)
