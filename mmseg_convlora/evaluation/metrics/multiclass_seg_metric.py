# Copyright (c) mmseg-convlora contributors. All rights reserved.
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from .functional import ber_from_counts, confusion_matrix, ratio
from .utils import EvalMetric, get_scores_and_gt


@METRICS.register_module()
class MultiClassSegMetric(EvalMetric):
    """``aAcc``, ``mIoU``, ``mBER`` (%) and ``MAE`` from one confusion matrix.

    Args:
        num_classes (int, optional): K; None takes it from the dataset's
            classes, else from the score channels.
        **kwargs: ``eval_size``, ``ignore_index``... of :class:`EvalMetric`.
    """

    def __init__(self, num_classes: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Accumulate one confusion matrix per image."""
        for data_sample in data_samples:
            scores, gt = get_scores_and_gt(
                data_sample, self.eval_size, fallback_to_pred=True)
            classes = (self.dataset_meta or {}).get('classes')
            num_classes = self.num_classes or len(classes or scores)
            # numpy's argmax over the leading axis is several times faster
            # than torch's on CPU; both take the first maximum on ties.
            pred = np.argmax(scores.numpy(), axis=0)
            self.results.append(
                confusion_matrix(pred, gt.numpy(), num_classes,
                                 self.ignore_index))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        """Sum the confusion matrices and log a per-class table."""
        if not results:
            return dict()
        conf = np.sum(np.stack(results), axis=0).astype(np.float64)
        n = conf.sum()
        tp = np.diag(conf)
        fp = conf.sum(axis=0) - tp
        fn = conf.sum(axis=1) - tp
        tn = n - tp - fp - fn
        iou = ratio(tp, tp + fp + fn, np.nan)
        recall = ratio(tp, tp + fn, np.nan)
        ber = ber_from_counts(tp, fp, fn, tn)[0]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            metrics = dict(
                aAcc=float(tp.sum() / n * 100) if n else float('nan'),
                mIoU=float(np.nanmean(iou) * 100),
                MAE=float(np.mean((fp + fn) / n)) if n else float('nan'),
                mBER=float(np.nanmean(ber)))

        classes = (self.dataset_meta or {}).get('classes')
        if not classes or len(classes) != len(tp):
            classes = [str(i) for i in range(len(tp))]
        class_table = PrettyTable()
        class_table.add_column('Class', list(classes))
        for key, val in dict(IoU=iou * 100, Acc=recall * 100, BER=ber).items():
            class_table.add_column(key, list(np.round(val, 2)))
        print_log('per class results:', 'current')
        print_log('\n' + class_table.get_string(), logger='current')
        return metrics
