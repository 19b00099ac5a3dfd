# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Reading one data sample at the evaluation resolution."""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

EvalSize = Optional[Union[int, Sequence[int]]]


def parse_eval_size(eval_size: EvalSize) -> Optional[Tuple[int, int]]:
    """Normalise ``eval_size`` to ``None`` or an ``(H, W)`` tuple of ints."""
    if eval_size is None:
        return None
    if isinstance(eval_size, int):
        return (eval_size, eval_size)
    eval_size = tuple(int(s) for s in eval_size)
    if len(eval_size) != 2 or min(eval_size) <= 0:
        raise ValueError(f'eval_size must be None, an int or (H, W), '
                         f'got {eval_size}')
    return eval_size


class EvalMetric(BaseMetric):
    """Base of the metrics: samples read at ``eval_size``, names unprefixed.

    Args:
        eval_size (int | tuple[int, int], optional): Evaluation size; None is
            the GT's.
        ignore_index (int): GT label left out. Default 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Default none.
    """

    default_prefix = ''  # metric names as they are: IoU, not x/IoU

    def __init__(self,
                 eval_size: EvalSize = None,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.eval_size = parse_eval_size(eval_size)
        self.ignore_index = ignore_index


def resize_for_eval(
    scores: torch.Tensor,
    gt: torch.Tensor,
    eval_size: Optional[Tuple[int, int]] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resize (C, h, w) scores and (H, W) labels to ``eval_size`` (None: the
    labels' size), bilinear and ``'nearest-exact'``; float32 and int64."""
    target = tuple(gt.shape[-2:]) if eval_size is None else tuple(eval_size)
    scores = scores.float()
    if tuple(scores.shape[-2:]) != target:
        scores = F.interpolate(
            scores[None], size=target, mode='bilinear', align_corners=False)[0]
    gt = gt.long()
    if tuple(gt.shape[-2:]) != target:
        # Interpolate as float then cast back: nearest never invents values.
        gt = F.interpolate(
            gt[None, None].float(), size=target,
            mode='nearest-exact')[0, 0].long()
    return scores, gt


def _field(data_sample: Union[dict, BaseDataElement], key: str):
    value = data_sample.get(key)
    if isinstance(value, BaseDataElement):
        return value.data
    return value['data'] if isinstance(value, dict) else value


def get_scores_and_gt(
        data_sample: Union[dict, BaseDataElement],
        eval_size: Optional[Tuple[int, int]] = None,
        fallback_to_pred: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """(C, H, W) ``seg_logits`` and (H, W) ``gt_sem_seg`` of a sample, on CPU.

    Args:
        fallback_to_pred (bool): Use a one-hot ``pred_sem_seg`` when
            ``seg_logits`` is missing (argmax metrics only).
    """
    scores = _field(data_sample, 'seg_logits')
    gt = _field(data_sample, 'gt_sem_seg')
    if gt is None:
        raise KeyError('data sample has no gt_sem_seg; metrics need the '
                       'ground truth (test mode without annotations?)')
    gt = torch.as_tensor(gt)
    if gt.dim() == 3:
        gt = gt[0]
    if scores is None:
        pred = _field(data_sample, 'pred_sem_seg')
        if not fallback_to_pred or pred is None:
            raise KeyError(
                'data sample has no seg_logits; this metric reads the '
                'probabilities, not only the thresholded map')
        pred = torch.as_tensor(pred).long()
        pred = pred[0] if pred.dim() == 3 else pred
        # A one-hot map goes through the same resize as scores; its argmax
        # is the hard prediction again.
        scores = F.one_hot(pred, int(pred.max()) + 1).permute(2, 0, 1)
    scores = torch.as_tensor(scores)
    if scores.dim() == 2:
        scores = scores[None]
    # Resize on the device the model left the tensors on (cheaper on GPU).
    scores, gt = resize_for_eval(scores, gt.to(scores.device), eval_size)
    return scores.detach().cpu(), gt.detach().cpu()


def get_binary_prob_and_label(
        data_sample: Union[dict, BaseDataElement],
        eval_size: Optional[Tuple[int, int]] = None,
        ignore_index: int = 255) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W) foreground probability, bool GT and valid mask of a sample whose
    ``seg_logits`` are (1, H, W) probabilities or (2, H, W) logits."""
    scores = _field(data_sample, 'seg_logits')
    if scores is not None:
        scores = torch.as_tensor(scores)
        if scores.dim() == 3 and scores.shape[0] == 2:
            data_sample = dict(
                seg_logits=dict(data=scores.float().softmax(0)[1:]),
                gt_sem_seg=dict(data=_field(data_sample, 'gt_sem_seg')))
        elif scores.dim() == 3 and scores.shape[0] != 1:
            raise ValueError(
                'binary metrics expect seg_logits of shape (1, H, W) or '
                f'(2, H, W), got {tuple(scores.shape)}')
    scores, label = get_scores_and_gt(data_sample, eval_size)
    prob = scores[0].double().numpy()
    # Bilinear resizing cannot leave [0, 1]; values outside mean logits were
    # passed where probabilities are required.
    if prob.size and (prob.min() < -1e-6 or prob.max() > 1 + 1e-6):
        raise ValueError(
            'binary metrics expect probabilities in [0, 1] in seg_logits '
            f'(got range [{prob.min():.3g}, {prob.max():.3g}]); apply the '
            'sigmoid before evaluation')
    label = label.numpy()
    valid = label != ignore_index
    # 0/255 masks fed raw would turn the whole foreground into ignore; a
    # label outside {0, 1, ignore} is the symptom of that family of bugs.
    if np.any(valid & (label != 0) & (label != 1)):
        raise ValueError('binary metrics expect GT labels in {0, 1} (plus '
                         f'ignore_index={ignore_index}), got '
                         f'{np.unique(label[valid]).tolist()[:10]}')
    return np.clip(prob, 0.0, 1.0), label == 1, valid
