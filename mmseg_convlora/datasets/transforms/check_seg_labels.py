"""Refusing label maps with values that are no class id."""
import numpy as np
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckSegLabels:
    """Refuse label maps with values neither in [0, K) nor ``ignore_index``.

    Args:
        num_classes (int): K.
        ignore_index (int): Also accepted. Default 255.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f'CheckSegLabels num_classes must be a positive integer, got '
                f'{num_classes!r}.')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def __call__(self, results: dict) -> dict:
        seg = results.get('gt_seg_map')
        if seg is None and 'seg_map_path' not in results:
            return results
        if seg is None:
            raise KeyError('CheckSegLabels needs gt_seg_map: put it after the '
                           'annotation loader in the pipeline.')
        values = np.unique(seg)
        bad = values[((values < 0) | (values >= self.num_classes))
                     & (values != self.ignore_index)]
        if bad.size:
            shown = bad[:10].tolist()
            raise ValueError(
                f'Mask {results.get("seg_map_path")!r} holds label values '
                f'{shown}{"..." if bad.size > 10 else ""} that are neither a '
                f'class id in [0, {self.num_classes}) nor ignore index '
                f'{self.ignore_index}: check num_classes, reduce_zero_label '
                'and label_map, or convert colour masks to class-index PNGs.')
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
