"""SAM prompts sampled from ground-truth masks, for prompt-aware training."""
from typing import List, Optional

import torch
from mmseg.registry import TASK_UTILS
from torch import Tensor


@TASK_UTILS.register_module()
class GTPromptSampler:
    """Sample a noisy box or points, (x, y) pixel indices, from each image's
    ground-truth mask (docs/prompts.md).

    Args:
        prob (float): Chance that an image gets a prompt. Default 0.5.
        box_prob (float): Chance that a prompt is a box, not points.
            Default 0.5.
        max_points (int): Most points in a point prompt. Default 3.
        box_noise_std (float): Box noise std, as a fraction of the box's
            width or height. Default 0.1.
        box_noise_max (float): Largest noise in pixels at 1024 px, scaled
            to the mask's longer side. Default 20.
    """

    def __init__(self,
                 prob: float = 0.5,
                 box_prob: float = 0.5,
                 max_points: int = 3,
                 box_noise_std: float = 0.1,
                 box_noise_max: float = 20.0):
        for name, value in (('prob', prob), ('box_prob', box_prob)):
            if not 0 <= value <= 1:
                raise ValueError(f'GTPromptSampler: {name} must be in '
                                 f'[0, 1], got {value}.')
        if max_points < 1 or box_noise_std < 0 or box_noise_max < 0:
            raise ValueError(
                'GTPromptSampler needs max_points >= 1 and non-negative '
                f'box noise; got max_points={max_points}, box_noise_std='
                f'{box_noise_std}, box_noise_max={box_noise_max}.')
        self.prob = prob
        self.box_prob = box_prob
        self.max_points = max_points
        self.box_noise_std = box_noise_std
        self.box_noise_max = box_noise_max

    def __call__(self, masks: Tensor, valid: Tensor) -> List[Optional[dict]]:
        """Per image of bool foreground ``masks`` and non-ignored ``valid``
        (B, H, W): None, ``dict(boxes=(4,))`` or ``dict(point_coords=(N,
        2), point_labels=(N,))``."""
        masks, valid = masks.cpu(), valid.cpu()
        prompts = []
        for mask, ok in zip(masks, valid):
            mask = mask & ok
            if float(torch.rand(())) >= self.prob or not mask.any():
                prompts.append(None)
            elif float(torch.rand(())) < self.box_prob:
                prompts.append(dict(boxes=self.box(mask)))
            else:
                prompts.append(self.points(mask, ok & ~mask))
        return prompts

    def box(self, mask: Tensor) -> Tensor:
        """Noisy tight box (x0, y0, x1, y1) of a non-empty (H, W) mask."""
        H, W = mask.shape
        ys, xs = torch.nonzero(mask, as_tuple=True)
        tight = torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()
        size = (tight[2:] - tight[:2]).repeat(2)  # w, h, w, h
        limit = self.box_noise_max * max(H, W) / 1024
        noise = (torch.randn(4) * self.box_noise_std * size).clamp(
            -limit, limit)
        box = tight + noise
        x0, x1 = box[0::2].sort().values.clamp(0, W - 1)
        y0, y1 = box[1::2].sort().values.clamp(0, H - 1)
        return torch.stack([x0, y0, x1, y1])

    def points(self, mask: Tensor, background: Tensor) -> dict:
        """1 to ``max_points`` points, the first on ``mask``."""
        n = int(torch.randint(1, self.max_points + 1, ()))
        labels = torch.ones(n, dtype=torch.long)
        if background.any():
            labels[1:] = (torch.rand(n - 1) >= 0.5).long()
        coords = []
        for label in labels.tolist():
            ys, xs = torch.nonzero(
                mask if label else background, as_tuple=True)
            i = int(torch.randint(len(xs), ()))
            coords.append(torch.stack([xs[i], ys[i]]))
        return dict(
            point_coords=torch.stack(coords).float(), point_labels=labels)
