"""The CPU demos' synthetic datasets and tiny SAM, built on demand.

``--task shadow``: ``train/`` and ``val/`` with ``images/*.jpg`` and 0/255
``masks/*.png`` (dark elliptical "shadows" on textured bright ground,
images of varied sizes). ``multiclass``: the same ground with bright squares
(class 1) and dark discs (class 2); masks hold class ids. Both get
``tiny_sam.pth``: a randomly initialised small SAM saved in the official
checkpoint layout, so the demo runs the same loading code as the real
weights. Nothing is downloaded.
"""
import os
import os.path as osp
from typing import List, Optional

import cv2
import numpy as np

from .tiny_sam import save_tiny_sam_checkpoint

TASKS = ('shadow', 'multiclass')


def make_shadow_sample(rng: np.random.Generator, size: tuple) -> tuple:
    """A bright textured (H, W) = ``size`` image with 1-2 dark ellipses and
    their 0/255 mask."""
    h, w = size
    base = rng.uniform(150, 220)
    img = base + rng.normal(0, 12, (h, w, 1)) + rng.normal(0, 6, (h, w, 3))
    # smooth illumination so that brightness alone is not a perfect cue
    _, xx = np.mgrid[0:h, 0:w]
    img += 25 * np.sin(xx / w * np.pi * rng.uniform(0.5, 2))[..., None]
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 3)):
        center = (int(rng.uniform(0.2, 0.8) * w),
                  int(rng.uniform(0.2, 0.8) * h))
        axes = (int(rng.uniform(0.1, 0.3) * w), int(rng.uniform(0.1, 0.3) * h))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    255, -1)
    shadow = mask > 0
    img[shadow] *= rng.uniform(0.3, 0.5)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_multiclass_sample(rng: np.random.Generator, size: tuple) -> tuple:
    """An image with bright squares (class 1) and dark discs (class 2) and
    its class-id mask."""
    h, w = size
    img = rng.uniform(110, 150) + rng.normal(0, 10, (h, w, 3))
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 3)):
        side = int(rng.uniform(0.2, 0.35) * min(h, w))
        x0 = int(rng.uniform(0, w - side))
        y0 = int(rng.uniform(0, h - side))
        mask[y0:y0 + side, x0:x0 + side] = 1
    for _ in range(rng.integers(1, 3)):
        center = (int(rng.uniform(0.2, 0.8) * w),
                  int(rng.uniform(0.2, 0.8) * h))
        radius = int(rng.uniform(0.1, 0.2) * min(h, w))
        cv2.circle(mask, center, radius, 2, -1)
    img[mask == 1] += 80
    img[mask == 2] -= 80
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_demo_data(out: str,
                   task: str = 'shadow',
                   num_train: int = 32,
                   num_val: int = 8,
                   seed: int = 0) -> str:
    """Write a demo dataset and its tiny SAM into ``out``.

    Args:
        out (str): Folder (created); existing files are overwritten.
        task (str): 'shadow' or 'multiclass'.
        num_train (int): Training images.
        num_val (int): Validation images.
        seed (int): Seed of the images and of the tiny SAM's weights.

    Returns:
        str: The tiny SAM checkpoint's path.
    """
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}.')
    sample = make_shadow_sample if task == 'shadow' else \
        make_multiclass_sample
    rng = np.random.default_rng(seed)
    for split, num in (('train', num_train), ('val', num_val)):
        for sub in ('images', 'masks'):
            os.makedirs(osp.join(out, split, sub), exist_ok=True)
        for i in range(num):
            size = (int(rng.integers(96, 161)), int(rng.integers(96, 161)))
            img, mask = sample(rng, size)
            name = f'{split}_{i:03d}'
            cv2.imwrite(
                osp.join(out, split, 'images', name + '.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(out, split, 'masks', name + '.png'), mask)
    ckpt = osp.join(out, 'tiny_sam.pth')
    save_tiny_sam_checkpoint(ckpt, seed=seed)
    return ckpt


def build_missing_demo_data(cfg) -> List[str]:
    """Build what a demo config reads and is not there yet.

    A demo config declares ``demo_data = dict(task=...)``; its data roots
    without ``train/images`` get the demo dataset, and a missing
    ``model.sam_checkpoint`` the tiny SAM. Other configs are left alone.

    Args:
        cfg (Config): The (merged) config.

    Returns:
        list[str]: What was built, for the log (empty if nothing).
    """
    demo: Optional[dict] = cfg.get('demo_data')
    if not demo:
        return []
    from .config_overrides import dataset_cfgs
    built = []
    task = demo.get('task', 'shadow')
    for root in sorted({d['data_root'] for d in dataset_cfgs(cfg)}):
        if not osp.isdir(osp.join(root, 'train', 'images')):
            make_demo_data(root, task)
            built.append(f'the {task} demo dataset and tiny SAM in {root}')
    sam = cfg.model.get('sam_checkpoint')
    if sam and not osp.isfile(sam):
        os.makedirs(osp.dirname(osp.abspath(sam)), exist_ok=True)
        save_tiny_sam_checkpoint(sam)
        built.append(f'the tiny SAM {sam}')
    return built
