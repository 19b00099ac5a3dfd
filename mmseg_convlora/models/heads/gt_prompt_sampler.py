"""SAM prompts sampled from ground-truth masks, for prompt-aware training."""
from typing import List, Optional

import torch
from mmseg.registry import TASK_UTILS
from torch import Tensor


@TASK_UTILS.register_module()
class GTPromptSampler:
    """Sample a box or points from each image's ground-truth mask.

    Each image gets, with probability ``prob``, one prompt: with
    probability ``box_prob`` the mask's tight box with Gaussian noise on
    each coordinate, otherwise 1 to ``max_points`` points, the first on
    the mask and each further one on the mask or off it (valid pixels
    only) with equal chance, uniformly over those pixels. Images with an
    empty mask get no prompt. Random numbers come from torch's global CPU
    generator (seeded by the runner, saved for exact resume).

    Coordinates are in the mask's pixel frame, x (column) first, as SAM's
    prompt encoder reads them: a point ``(x, y)`` is the pixel
    ``mask[y, x]``, a box is ``(x0, y0, x1, y1)`` with inclusive pixel
    indices (``segment_anything.utils.amg.batched_mask_to_box``).

    Args:
        prob (float): Chance that an image gets a prompt. Default 0.5.
        box_prob (float): Chance that a prompt is a box, not points.
            Default 0.5.
        max_points (int): Most points in a point prompt. Default 3.
        box_noise_std (float): Standard deviation of each box coordinate's
            noise, as a fraction of the box's width (x) or height (y).
            Default 0.1.
        box_noise_max (float): Largest noise in pixels of a 1024-pixel
            input, scaled to the mask's longer side (5 px at 256).
            Default 20.
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
        """Sample one prompt (or none) per image.

        Args:
            masks (Tensor): Foreground, bool (B, H, W).
            valid (Tensor): Pixels that are not ignored, bool (B, H, W).

        Returns:
            list[dict | None]: Per image None, ``dict(boxes=(4,))`` or
            ``dict(point_coords=(N, 2), point_labels=(N,))`` (labels 1 on
            the mask, 0 off it), float / long CPU tensors.
        """
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
        """The tight box of a non-empty (H, W) mask with noise, clipped to
        the image: (x0, y0, x1, y1)."""
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
        """1 to ``max_points`` points: the first on ``mask``, the others on
        ``mask`` or ``background`` (if it has pixels) with equal chance."""
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
