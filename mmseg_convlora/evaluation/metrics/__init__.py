# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Metrics of the fields Conv-LoRA is evaluated on, as mmseg evaluators.

Importing this module registers them into ``mmseg.registry.METRICS``.
"""
from .ber_metric import BERMetric, BERPerImageMetric
from .binary_seg_metric import BinarySegMetric
from .multiclass_seg_metric import MultiClassSegMetric
from .sod_metric import SODMetric

__all__ = [
    'SODMetric', 'BERMetric', 'BERPerImageMetric', 'BinarySegMetric',
    'MultiClassSegMetric'
]
