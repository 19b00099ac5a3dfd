# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""The field's metrics, registered in ``mmseg.registry.METRICS``."""
from .ber_metric import BERMetric, BERPerImageMetric
from .binary_seg_metric import BinarySegMetric
from .multiclass_seg_metric import MultiClassSegMetric
from .sod_metric import SODMetric

__all__ = [
    'SODMetric', 'BERMetric', 'BERPerImageMetric', 'BinarySegMetric',
    'MultiClassSegMetric'
]
