# Copyright (c) mmseg-convlora contributors. All rights reserved.
from typing import Dict, List, Sequence

from mmengine.logging import print_log
from mmseg.registry import METRICS

from .functional import (acc_from_counts, binary_counts, dice_from_counts,
                         iou_from_counts, stack_counts, threshold_jaccard)
from .utils import EvalMetric, get_binary_prob_and_label


@METRICS.register_module()
class BinarySegMetric(EvalMetric):
    """Per-image IoU, Dice, accuracy and ISIC Jaccard scores, averaged, in %.

    Args:
        threshold (float): Foreground threshold. Default 0.5.
        jaccard_threshold (float): Cut of ``threshold_Jaccard``, in [0, 1].
            Default 0.65.
        **kwargs: ``eval_size``, ``ignore_index``... of :class:`EvalMetric`.
    """

    def __init__(self,
                 threshold: float = 0.5,
                 jaccard_threshold: float = 0.65,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.jaccard_threshold = jaccard_threshold

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Count TP / FP / FN / TN of each image."""
        for data_sample in data_samples:
            prob, gt, valid = get_binary_prob_and_label(
                data_sample, self.eval_size, self.ignore_index)
            if not valid.any():
                print_log(
                    'BinarySegMetric: skipping an image without valid '
                    'GT pixels', 'current')
                # A placeholder keeps one result per image: under DDP
                # mmengine drops the sampler's padded duplicates by position.
                self.results.append(dict(skipped=True))
                continue
            self.results.append(
                binary_counts(prob > self.threshold, gt, valid))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Average the per-image scores."""
        results = [r for r in results if not r.get('skipped')]
        if not results:
            return dict()
        c = stack_counts(results)
        iou = iou_from_counts(c['tp'], c['fp'], c['fn'])
        dice = dice_from_counts(c['tp'], c['fp'], c['fn'])
        acc = acc_from_counts(**c)
        t_jac = threshold_jaccard(iou, self.jaccard_threshold)
        return dict(
            IoU=float(iou.mean() * 100),
            Dice=float(dice.mean() * 100),
            Acc=float(acc.mean() * 100),
            Jaccard=float(iou.mean() * 100),
            threshold_Jaccard=float(t_jac.mean() * 100))
