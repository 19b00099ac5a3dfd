# Copyright (c) mmseg-convlora contributors. All rights reserved.
from typing import Dict, List, Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .functional import (e_measure_adaptive, e_measure_curve, mae,
                         prepare_sod_inputs, s_measure, weighted_f_measure)
from .utils import EvalMetric, get_binary_prob_and_label


@METRICS.register_module()
class SODMetric(EvalMetric):
    """S-measure, E-measure, weighted F-measure and MAE, as the SOD toolkits.

    Args:
        sod_metrics (Sequence[str]): Subset of ``('Sm', 'Em', 'wFm', 'MAE')``;
            ``'Em'`` gives ``meanEm``, ``maxEm``, ``adpEm``. Default all.
        alpha (float): S-measure balance. Default 0.5.
        beta2 (float): beta^2 of the weighted F-measure. Default 1.0.
        **kwargs: As :class:`EvalMetric`; ``ignore_index`` pixels are
            scored as background.
    """
    ALL_METRICS = ('Sm', 'Em', 'wFm', 'MAE')

    def __init__(self,
                 sod_metrics: Sequence[str] = ALL_METRICS,
                 alpha: float = 0.5,
                 beta2: float = 1.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(sod_metrics, str):
            sod_metrics = [sod_metrics]
        unknown = set(sod_metrics) - set(self.ALL_METRICS)
        if unknown:
            raise KeyError(f'unknown SOD metrics {sorted(unknown)}; '
                           f'choose from {self.ALL_METRICS}')
        self.metrics = tuple(m for m in self.ALL_METRICS if m in sod_metrics)
        self.alpha = alpha
        self.beta2 = beta2
        self._warned_ignore = False

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score each image."""
        for data_sample in data_samples:
            prob, gt, valid = get_binary_prob_and_label(
                data_sample, self.eval_size, self.ignore_index)
            if not valid.all() and not self._warned_ignore:
                print_log(
                    'SODMetric: GT contains ignore_index pixels; they '
                    'are scored as background', 'current')
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
        """Average the per-image scores."""
        metrics = dict()
        if not results:
            return metrics
        for key in self.metrics:
            if key != 'Em':
                metrics[key] = float(np.mean([r[key] for r in results]))
                continue
            curve = np.mean(np.stack([r['Em_curve'] for r in results]), 0)
            metrics['meanEm'] = float(curve.mean())
            metrics['maxEm'] = float(curve.max())
            metrics['adpEm'] = float(np.mean([r['adpEm'] for r in results]))
        return metrics
