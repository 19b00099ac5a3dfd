# Copyright (c) mmseg-convlora contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .functional import (e_measure_adaptive, e_measure_curve, mae,
                         prepare_sod_inputs, s_measure, weighted_f_measure)
from .utils import EvalSize, get_binary_prob_and_label, parse_eval_size


@METRICS.register_module()
class SODMetric(BaseMetric):
    """Salient / camouflaged object and polyp metrics: S, E, weighted F, MAE.

    Conventions (those of the standard toolkits, so values are comparable
    with the polyp and camouflage tables of Conv-LoRA, SAM-Adapter and the
    COD / polyp literature):

    * Input: the foreground probability ``seg_logits`` (not the thresholded
      map), min-max stretched per image when its max > min. GT foreground is
      label 1 (the toolkits' ``> 128`` of 255 on 0/1 labels).
    * Ignore label: the toolkits have no ignore label and S / E / weighted F
      need whole images, so GT pixels equal to ``ignore_index`` are scored as
      background (a warning is logged once). Binary datasets of this plugin
      map masks to 0/1, so this does not arise in practice.
    * ``Sm``: S-measure, alpha 0.5 (Fan et al., ICCV 2017), per image, mean.
    * ``meanEm`` / ``maxEm``: E-measure (Fan et al., IJCAI 2018) on the
      uint8-quantised map at 256 thresholds; the per-image curves are
      averaged over the dataset first, then the mean / max over thresholds
      is taken (as the toolkits do). ``meanEm`` is the papers' E_phi.
      Normalised by ``H * W - 1`` like the MATLAB code, so a perfect
      prediction gives ``maxEm = N / (N - 1)`` (1 + 1e-6 at 1024x1024).
    * ``adpEm``: E-measure at the adaptive threshold ``min(2 mean, 1)``.
    * ``wFm``: weighted F-measure (Margolin et al., CVPR 2014) with
      ``beta2`` (1 = toolkits' default; 0.3 reproduces the Conv-LoRA paper's
      F_w^beta). An image with an empty GT scores 0.
    * ``MAE``: mean absolute error of the stretched map, per image, mean.
    * Scale: every value is in [0, 1] (as the toolkits print); ``MAE`` is
      lower-is-better, the rest higher-is-better.

    Args:
        sod_metrics (Sequence[str]): Subset of ``('Sm', 'Em', 'wFm',
            'MAE')`` to compute; ``'Em'`` gives ``meanEm``, ``maxEm`` and
            ``adpEm``. Default: all. (Not ``metrics``: mmengine's runner
            reads an evaluator config with a ``metrics`` key as a custom
            ``Evaluator``, not as this metric.)
        alpha (float): S-measure balance. Default 0.5.
        beta2 (float): beta^2 of the weighted F-measure. Default 1.0.
        eval_size (int | tuple[int, int], optional): None evaluates at the
            GT's resolution (the prediction is resized bilinearly); ``(H,
            W)`` evaluates at that size with the GT resized by nearest
            neighbour (``1024`` for parity with the reference code).
        ignore_index (int): GT label scored as background. Default 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default ``'cpu'``.
        prefix (str, optional): Prefix of the metric names.

    Returns of :meth:`compute_metrics`: dict with keys among ``Sm``,
    ``meanEm``, ``maxEm``, ``adpEm``, ``wFm``, ``MAE`` (floats in [0, 1]).
    """
    ALL_METRICS = ('Sm', 'Em', 'wFm', 'MAE')

    def __init__(self,
                 sod_metrics: Sequence[str] = ALL_METRICS,
                 alpha: float = 0.5,
                 beta2: float = 1.0,
                 eval_size: EvalSize = None,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(sod_metrics, str):
            sod_metrics = [sod_metrics]
        unknown = set(sod_metrics) - set(self.ALL_METRICS)
        if unknown:
            raise KeyError(f'unknown SOD metrics {sorted(unknown)}; '
                           f'choose from {self.ALL_METRICS}')
        self.metrics = tuple(m for m in self.ALL_METRICS if m in sod_metrics)
        self.alpha = alpha
        self.beta2 = beta2
        self.eval_size = parse_eval_size(eval_size)
        self.ignore_index = ignore_index
        self._warned_ignore = False

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score each image and keep its per-image numbers.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Model outputs with ``seg_logits``
                (1, H, W) probabilities and ``gt_sem_seg`` (1, H, W) labels.
        """
        for data_sample in data_samples:
            prob, gt, valid = get_binary_prob_and_label(
                data_sample, self.eval_size, self.ignore_index)
            if not valid.all() and not self._warned_ignore:
                print_log(
                    'SODMetric: GT contains ignore_index pixels; they are '
                    'scored as background',
                    logger='current')
                self._warned_ignore = True
            pred, gt = prepare_sod_inputs(prob, gt & valid)
            result = dict()
            if 'Sm' in self.metrics:
                result['Sm'] = s_measure(pred, gt, self.alpha)
            if 'Em' in self.metrics:
                result['Em_curve'] = e_measure_curve(pred, gt)
                result['adpEm'] = e_measure_adaptive(pred, gt)
            if 'wFm' in self.metrics:
                result['wFm'] = weighted_f_measure(pred, gt, self.beta2)
            if 'MAE' in self.metrics:
                result['MAE'] = mae(pred, gt)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Average the per-image numbers.

        Args:
            results (list[dict]): Per-image results of :meth:`process`.

        Returns:
            dict[str, float]: See the class docstring.
        """
        metrics = dict()
        if not results:
            return metrics
        if 'Sm' in self.metrics:
            metrics['Sm'] = float(np.mean([r['Sm'] for r in results]))
        if 'Em' in self.metrics:
            curve = np.mean(np.stack([r['Em_curve'] for r in results]), 0)
            metrics['meanEm'] = float(curve.mean())
            metrics['maxEm'] = float(curve.max())
            metrics['adpEm'] = float(np.mean([r['adpEm'] for r in results]))
        if 'wFm' in self.metrics:
            metrics['wFm'] = float(np.mean([r['wFm'] for r in results]))
        if 'MAE' in self.metrics:
            metrics['MAE'] = float(np.mean([r['MAE'] for r in results]))
        return metrics
