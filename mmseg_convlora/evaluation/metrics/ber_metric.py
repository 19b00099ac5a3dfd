# Copyright (c) mmseg-convlora contributors. All rights reserved.
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .functional import ber_from_counts, binary_counts
from .utils import EvalSize, get_binary_prob_and_label, parse_eval_size


@METRICS.register_module()
class BERMetric(BaseMetric):
    """Balance error rate for shadow detection, SBU convention.

    Conventions (the SBU / ISTD shadow-detection tables, e.g. the SBU column
    of the Conv-LoRA paper as the field defines it):

    * The foreground probability ``seg_logits`` and the GT are both
      thresholded at ``> 125 / 255`` (on 0..255 maps: ``> 125``); for 0/1 GT
      labels that is label 1. Pixels whose GT is ``ignore_index`` are left
      out of every count.
    * TP, TN, FP, FN are summed over the whole test set, then
      ``BER = 100 (1 - (TP / Np + TN / Nn) / 2)``,
      ``shadow_BER = 100 (1 - TP / Np)`` (error on shadow pixels) and
      ``non_shadow_BER = 100 (1 - TN / Nn)``.
    * Scale: percent, lower is better. A term is NaN only if the whole test
      set has no shadow (or no non-shadow) pixel.

    For the mean of per-image BERs (what the Conv-LoRA and SAM-Adapter code
    report) use :class:`BERPerImageMetric`.

    Args:
        threshold (float): Binarisation threshold of prediction and GT, on
            the [0, 1] scale. Default ``125 / 255``.
        eval_size (int | tuple[int, int], optional): None evaluates at the
            GT's resolution (the prediction is resized bilinearly); ``(H,
            W)`` evaluates at that size with the GT resized by nearest
            neighbour.
        ignore_index (int): GT label excluded from the counts. Default 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default ``'cpu'``.
        prefix (str, optional): Prefix of the metric names.

    The per-class keys are named after the dataset's classes
    (``dataset_meta['classes']``, background first: ``shadow_BER`` and
    ``non_shadow_BER`` for SBU, ``polyp_BER`` and ``background_BER`` for
    polyps); without dataset meta, the SBU names.
    """

    def __init__(self,
                 threshold: float = 125 / 255,
                 eval_size: EvalSize = None,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.threshold = threshold
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
            # The GT is a 0/1 label map, so ``label > threshold`` is label 1.
            self.results.append(
                binary_counts(prob > self.threshold, gt, valid))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the counts over the dataset and compute the error rates.

        Args:
            results (list[dict]): Per-image counts ``tp, fp, fn, tn``.

        Returns:
            dict[str, float]: ``BER``, ``<foreground>_BER``,
            ``<background>_BER`` (e.g. ``shadow_BER``, ``non_shadow_BER``)
            in percent.
        """
        totals = {
            k: sum(r[k] for r in results)
            for k in ('tp', 'fp', 'fn', 'tn')
        }
        ber, pos_err, neg_err = ber_from_counts(**totals)
        fg, bg = self.class_key_names()
        return {'BER': ber, f'{fg}_BER': pos_err, f'{bg}_BER': neg_err}

    def class_key_names(self) -> Tuple[str, str]:
        """(foreground, background) as metric-key words, e.g.
        ``('shadow', 'non_shadow')``."""
        classes = (self.dataset_meta or {}).get('classes')
        if not classes or len(classes) != 2:
            classes = ('non-shadow', 'shadow')
        background, foreground = (
            re.sub(r'[^0-9A-Za-z]+', '_', str(c)).strip('_') for c in classes)
        return foreground, background


@METRICS.register_module()
class BERPerImageMetric(BERMetric):
    """Mean over images of the per-image balance error rate.

    This is what the Conv-LoRA and SAM-Adapter evaluation code report as BER
    for SBU: they threshold at ``> 125`` of 255 (as :class:`BERMetric`),
    compute ``shadow`` and ``non-shadow`` error per image and average them
    over the test images. It weighs every image equally, so it generally
    differs from the dataset-level :class:`BERMetric`, and its keys carry a
    ``_per_image`` suffix so the two are never confused in a log.

    Images without shadow (or without non-shadow) pixels: the reference code
    divides 0 by 0 there and its average becomes NaN. Here an undefined term
    is left out: such an image does not count towards ``shadow_BER_per_image``
    (resp. ``non_shadow_BER_per_image``), and its BER is the one error that is
    defined (e.g. the false-positive rate of a shadow-free image). Images with
    no valid pixel at all are skipped. The numbers of such images are logged.

    Scale: percent, lower is better.

    Args: see :class:`BERMetric`.

    Returns of :meth:`compute_metrics`: ``BER_per_image``,
    ``shadow_BER_per_image``, ``non_shadow_BER_per_image``.
    """

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Average per-image error rates over the images.

        Args:
            results (list[dict]): Per-image counts ``tp, fp, fn, tn``.

        Returns:
            dict[str, float]: ``BER_per_image``,
            ``<foreground>_BER_per_image``, ``<background>_BER_per_image``
            (e.g. ``shadow_BER_per_image``) in percent.
        """
        counts = {
            k: np.array([r[k] for r in results], dtype=np.float64)
            for k in ('tp', 'fp', 'fn', 'tn')
        }
        _, pos_err, neg_err = ber_from_counts(**counts)
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
