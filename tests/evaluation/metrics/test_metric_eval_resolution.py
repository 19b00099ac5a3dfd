"""Where the metrics evaluate: the GT's resolution (prediction resized,
bilinear) by default, or the square input size (GT nearest-resized)."""
import numpy as np
import pytest
import torch

from mmseg_convlora.evaluation.metrics import (BERMetric, BinarySegMetric,
                                               MultiClassSegMetric, SODMetric)
from mmseg_convlora.evaluation.metrics.utils import (get_binary_prob_and_label,
                                                     parse_eval_size,
                                                     resize_for_eval)


def sample(prob, gt):
    prob = torch.as_tensor(np.asarray(prob), dtype=torch.float32)
    if prob.dim() == 2:
        prob = prob[None]
    gt = torch.as_tensor(np.asarray(gt), dtype=torch.long)[None]
    return dict(seg_logits=dict(data=prob), gt_sem_seg=dict(data=gt))


GT_4 = np.array([[0, 0, 1, 1]] * 4)


def test_parse_eval_size():
    assert parse_eval_size(None) is None
    assert parse_eval_size(1024) == (1024, 1024)
    assert parse_eval_size([512, 768]) == (512, 768)
    with pytest.raises(ValueError):
        parse_eval_size((1, 2, 3))


def test_gt_resolution_resizes_prediction_bilinearly():
    # A 2x2 prediction [[0, 1], [0, 1]] to 4x4 with align_corners=False:
    # output column x samples source (x + 0.5) / 2 - 0.5 = -0.25, 0.25,
    # 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1 -> values 0, .25, .75, 1.
    prob, gt, valid = get_binary_prob_and_label(sample([[0, 1], [0, 1]], GT_4))
    np.testing.assert_allclose(prob, [[0, 0.25, 0.75, 1]] * 4)
    np.testing.assert_array_equal(gt, GT_4 == 1)  # untouched
    assert valid.all()
    # Counted over the GT's 16 pixels, not the prediction's 4.
    metric = BERMetric()
    metric.process({}, [sample([[0, 1], [0, 1]], GT_4)])
    assert metric.results == [dict(tp=8, fp=0, fn=0, tn=8)]


def test_gt_resolution_never_resizes_gt_when_prediction_is_larger():
    gt = np.array([[0, 1], [1, 255]])
    prob = np.kron(np.array([[0.0, 1.0], [1.0, 0.0]]), np.ones((4, 4)))
    p, g, valid = get_binary_prob_and_label(sample(prob, gt))
    assert p.shape == (2, 2)
    np.testing.assert_array_equal(g, [[False, True], [True, False]])
    np.testing.assert_array_equal(valid, [[True, True], [True, False]])


def test_square_input_resizes_gt_with_nearest():
    # GT 3x3 with one foreground pixel in the centre and an ignore corner,
    # evaluated at 4x4. Pixel-centre nearest ('nearest-exact', = PIL's
    # NEAREST of the reference pipelines) maps output index x to source
    # floor((x + 0.5) * 3/4) = 0, 1, 1, 2, so the centre becomes the 2x2
    # block [1:3, 1:3] and the corner stays 255. A bilinear GT resize would
    # create fractional labels and blur 255 into its neighbours; floor-based
    # 'nearest' would give indices 0, 0, 1, 2 and a single pixel.
    gt = np.array([[255, 0, 0], [0, 1, 0], [0, 0, 0]])
    prob = np.zeros((3, 3))
    prob[1, 1] = 1.0
    p, g, valid = get_binary_prob_and_label(sample(prob, gt), (4, 4))
    expected = np.zeros((4, 4), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(g, expected)
    assert (~valid).sum() == 1 and not valid[0, 0]
    assert p.shape == (4, 4)
    # The prediction is bilinear: fractional values appear.
    assert ((p > 0) & (p < 1)).any()
    # The label tensor itself keeps only original values.
    _, gt_t = resize_for_eval(
        torch.zeros(1, 3, 3), torch.as_tensor(gt), (4, 4))
    assert set(gt_t.unique().tolist()) == {0, 1, 255}


def test_eval_size_option_in_every_metric():
    # The 4x4 sample evaluated at 8x8. GT (nearest-exact, source column
    # floor((x + 0.5) / 2)): columns [0 0 0 0 1 1 1 1]. Prediction
    # (bilinear, source (x + 0.5) / 2 - 0.5 = -.25, .25, ..., 3.25):
    # columns [0 0 0 .25 .75 1 1 1]. The metrics see 64 pixels.
    s = sample(GT_4 * 1.0, GT_4)
    ber = BERMetric(eval_size=8)
    ber.process({}, [s])
    assert ber.results == [dict(tp=32, fp=0, fn=0, tn=32)]
    sod = SODMetric(eval_size=8, sod_metrics=['MAE'])
    sod.process({}, [s])
    # Two columns of eight off by 0.25.
    assert sod.compute_metrics(sod.results)['MAE'] == pytest.approx(2 * 0.25 /
                                                                    8)
    seg = BinarySegMetric(eval_size=8)
    seg.process({}, [s])
    assert seg.results == [dict(tp=32, fp=0, fn=0, tn=32)]
    scores = torch.stack(
        [torch.as_tensor(1.0 - GT_4),
         torch.as_tensor(GT_4 * 1.0)]).float()
    mc = MultiClassSegMetric(num_classes=2, eval_size=(8, 8))
    mc.process({}, [
        dict(
            seg_logits=dict(data=scores),
            gt_sem_seg=dict(data=torch.as_tensor(GT_4)[None]))
    ])
    assert mc.results[0].sum() == 64
    assert mc.compute_metrics(mc.results)['mIoU'] == 100.0


def test_multiclass_scores_resized_to_gt():
    # Scores at 2x2, GT at 4x4: the argmax is taken after bilinear
    # resizing the scores, at the GT's resolution.
    gt = np.array([[0, 0, 1, 1]] * 4)
    scores = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    mc = MultiClassSegMetric(num_classes=2)
    mc.process({}, [
        dict(
            seg_logits=dict(data=scores),
            gt_sem_seg=dict(data=torch.as_tensor(gt)[None]))
    ])
    np.testing.assert_array_equal(mc.results[0], [[8, 0], [0, 8]])


def test_two_channel_logits_are_softmaxed():
    logits = torch.stack([torch.zeros(4, 4), torch.as_tensor(GT_4 * 4.0 - 2)])
    p, g, _ = get_binary_prob_and_label(
        dict(
            seg_logits=dict(data=logits),
            gt_sem_seg=dict(data=torch.as_tensor(GT_4)[None])))
    # softmax([0, 2])[1] = 1 / (1 + e^-2); softmax([0, -2])[1] = 1 / (1 + e^2)
    np.testing.assert_allclose(
        p,
        np.where(GT_4 == 1, 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))),
        rtol=1e-6)
