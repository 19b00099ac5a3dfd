# Copyright (c) mmseg-convlora contributors. All rights reserved.
import re
import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .functional import ber_from_counts, binary_counts, stack_counts
from .utils import EvalMetric, get_binary_prob_and_label


@METRICS.register_module()
class BERMetric(EvalMetric):
    """Dataset-level balance error rate (SBU convention), in percent.

    TP/TN/FP/FN at ``threshold`` are summed over the test set; the per-class
    keys are named after ``dataset_meta['classes']``, e.g. ``shadow_BER``.

    Args:
        threshold (float): Threshold on the [0, 1] scale. Default 125 / 255.
        **kwargs: ``eval_size``, ``ignore_index``... of :class:`EvalMetric`.
    """

    def __init__(self, threshold: float = 125 / 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Count TP / FP / FN / TN of each image."""
        for data_sample in data_samples:
            prob, gt, valid = get_binary_prob_and_label(
                data_sample, self.eval_size, self.ignore_index)
            # The GT is a 0/1 label map, so ``label > threshold`` is label 1.
            self.results.append(
                binary_counts(prob > self.threshold, gt, valid))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the counts into ``BER``, ``<fg>_BER``, ``<bg>_BER``."""
        totals = {k: v.sum() for k, v in stack_counts(results).items()}
        ber, pos_err, neg_err = ber_from_counts(**totals)
        fg, bg = self.class_key_names()
        return {'BER': ber, f'{fg}_BER': pos_err, f'{bg}_BER': neg_err}

    def class_key_names(self) -> Tuple[str, str]:
        """(foreground, background) key words, e.g. ``shadow``."""
        classes = (self.dataset_meta or {}).get('classes')
        if not classes or len(classes) != 2:
            classes = ('non-shadow', 'shadow')
        background, foreground = (
            re.sub(r'[^0-9A-Za-z]+', '_', str(c)).strip('_') for c in classes)
        return foreground, background


@METRICS.register_module()
class BERPerImageMetric(BERMetric):
    """Mean of the per-image BERs (the Conv-LoRA code's), in percent; terms
    an image does not define are left out, keys end in ``_per_image``."""

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Average the per-image error rates."""
        _, pos_err, neg_err = ber_from_counts(**stack_counts(results))
        no_pos = int(np.isnan(pos_err).sum())
        no_neg = int(np.isnan(neg_err).sum())
        fg, bg = self.class_key_names()
        if no_pos or no_neg:
            print_log(
                f'BERPerImageMetric: {no_pos} image(s) without {fg} and '
                f'{no_neg} without {bg} pixels; their undefined error '
                'terms are left out of the means',
                logger='current')
        with warnings.catch_warnings():
            # All-NaN columns (e.g. no image has shadow) are meant to be NaN.
            warnings.simplefilter('ignore', RuntimeWarning)
            ber = np.nanmean(np.stack([pos_err, neg_err]), axis=0)
            return {
                'BER_per_image': float(np.nanmean(ber)),
                f'{fg}_BER_per_image': float(np.nanmean(pos_err)),
                f'{bg}_BER_per_image': float(np.nanmean(neg_err))
            }
