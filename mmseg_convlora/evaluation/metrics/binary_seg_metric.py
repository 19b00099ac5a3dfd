# Copyright (c) mmseg-convlora contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .functional import (acc_from_counts, binary_counts, dice_from_counts,
                         iou_from_counts, threshold_jaccard)
from .utils import EvalSize, get_binary_prob_and_label, parse_eval_size


@METRICS.register_module()
class BinarySegMetric(BaseMetric):
    """Per-image IoU, Dice, accuracy and ISIC Jaccard scores, averaged, in %.

    Args:
        threshold (float): Foreground threshold. Default 0.5.
        jaccard_threshold (float): Cut of ``threshold_Jaccard``, in [0, 1].
            Default 0.65.
        eval_size, ignore_index, collect_device, prefix: As
            :class:`BERMetric`.
    """

    default_prefix = ''  # metric names as they are: IoU, not x/IoU

    def __init__(self,
                 threshold: float = 0.5,
                 jaccard_threshold: float = 0.65,
                 eval_size: EvalSize = None,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.threshold = threshold
        self.jaccard_threshold = jaccard_threshold
        self.eval_size = parse_eval_size(eval_size)
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Count TP / FP / FN / TN of each image."""
        for data_sample in data_samples:
            prob, gt, valid = get_binary_prob_and_label(
                data_sample, self.eval_size, self.ignore_index)
            if not valid.any():
                print_log(
                    'BinarySegMetric: skipping an image without valid GT '
                    'pixels',
                    logger='current')
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
        c = {
            k: np.array([r[k] for r in results], dtype=np.float64)
            for k in ('tp', 'fp', 'fn', 'tn')
        }
        iou = iou_from_counts(c['tp'], c['fp'], c['fn'])
        dice = dice_from_counts(c['tp'], c['fp'], c['fn'])
        acc = acc_from_counts(c['tp'], c['fp'], c['fn'], c['tn'])
        t_jac = threshold_jaccard(iou, self.jaccard_threshold)
        return dict(
            IoU=float(iou.mean() * 100),
            Dice=float(dice.mean() * 100),
            Acc=float(acc.mean() * 100),
            Jaccard=float(iou.mean() * 100),
            threshold_Jaccard=float(t_jac.mean() * 100))
