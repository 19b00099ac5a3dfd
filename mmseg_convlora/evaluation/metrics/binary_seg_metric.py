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
    """Per-image foreground IoU, Dice, accuracy and the ISIC Jaccard scores.

    Conventions (the ISIC 2017, leaf-disease and road tables of the
    Conv-LoRA paper; the ISIC 2017 / 2018 challenge definitions):

    * The foreground probability ``seg_logits`` is binarised at
      ``> threshold`` (0.5, as mmseg does for one-channel heads). GT pixels
      equal to ``ignore_index`` are left out of every count.
    * Per image: ``IoU = TP / (TP + FP + FN)``, ``Dice = 2 TP / (2 TP + FP +
      FN)``, ``Acc = (TP + TN) / N``; IoU and Dice are 1 for an image whose
      GT and prediction are both empty. ``Jaccard`` is the ISIC name of the
      same per-image IoU; ``threshold_Jaccard`` (ISIC 2018) sets an image's
      Jaccard to 0 when it is below ``jaccard_threshold`` (0.65).
    * Aggregation: mean over images (not dataset-level sums). Images with no
      valid pixel are skipped.
    * Scale: percent (x100, as mmseg's ``IoUMetric`` prints), higher is
      better.

    Args:
        threshold (float): Probability threshold (``prob > threshold`` is
            foreground). Default 0.5.
        jaccard_threshold (float): Cut of the thresholded Jaccard, on the
            [0, 1] scale. Default 0.65.
        eval_size (int | tuple[int, int], optional): None evaluates at the
            GT's resolution (the prediction is resized bilinearly); ``(H,
            W)`` evaluates at that size with the GT resized by nearest
            neighbour.
        ignore_index (int): GT label excluded from the counts. Default 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default ``'cpu'``.
        prefix (str, optional): Prefix of the metric names.
    """

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
        """Count TP / FP / FN / TN of each image.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Model outputs with ``seg_logits``
                (1, H, W) probabilities and ``gt_sem_seg`` (1, H, W) labels.
        """
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
        """Per-image scores, averaged.

        Args:
            results (list[dict]): Per-image counts ``tp, fp, fn, tn``.

        Returns:
            dict[str, float]: ``IoU``, ``Dice``, ``Acc``, ``Jaccard``,
            ``threshold_Jaccard`` in percent.
        """
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
