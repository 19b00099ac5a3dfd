"""Generate the CPU demos: small synthetic datasets and a tiny SAM.

Writes ``data/demo_<task>/{train,val}/{images,masks}`` (shadow: dark
ellipses, 0/255 masks; multiclass: squares = 1, discs = 2) and
``tiny_sam.pth``, a random small SAM in the official layout.
"""
import argparse
import os.path as osp
import sys
from functools import partial
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2
import numpy as np
import torch
import torch.nn as nn
from mmengine.utils import mkdir_or_exist
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder,
                                       PromptEncoder, Sam, TwoWayTransformer)

from tools.config_overrides import dataset_cfgs

TASKS = ('shadow', 'multiclass')
# 128x128 input -> 8x8 patch grid -> four 4x4 windows in windowed blocks.
TINY_ENCODER = dict(
    embed_dim=32,
    depth=2,
    num_heads=2,
    global_attn_indexes=(1, ),
    window_size=4)
TINY_DECODER = dict(depth=2, mlp_dim=64, num_heads=2, iou_head_hidden_dim=32)
TINY_EMBED_DIM = 32
TINY_IMG_SIZE = 128


def build_tiny_sam(img_size: int = TINY_IMG_SIZE,
                   embed_dim: int = TINY_EMBED_DIM,
                   decoder: Optional[dict] = None,
                   seed: int = 0) -> Sam:
    """A small random ``segment_anything`` SAM in eval mode (global RNG
    untouched).

    Args:
        img_size (int): Square input size.
        embed_dim (int): Prompt/decoder dim (SAM: 256).
        decoder (dict, optional): Overrides of :data:`TINY_DECODER`.
        seed (int): Seed of the weights.
    """
    dec = dict(TINY_DECODER, **(decoder or {}))
    iou_head_hidden_dim = dec.pop('iou_head_hidden_dim')
    grid = img_size // 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size,
                patch_size=16,
                mlp_ratio=4,
                out_chans=embed_dim,
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                **TINY_ENCODER),
            prompt_encoder=PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(img_size, img_size),
                mask_in_chans=16),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(embedding_dim=embed_dim, **dec),
                transformer_dim=embed_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=iou_head_hidden_dim),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375])
        with torch.no_grad():  # SAM zero-initialises them
            for name, param in sam.image_encoder.named_parameters():
                if name == 'pos_embed' or 'rel_pos' in name:
                    param.normal_(0, 0.02)
    return sam.eval()


def save_tiny_sam_checkpoint(path: str, **kwargs) -> Sam:
    """Save :func:`build_tiny_sam` like the official files; return it."""
    sam = build_tiny_sam(**kwargs)
    torch.save(sam.state_dict(), path)
    return sam


def make_shadow_sample(rng: np.random.Generator, size: tuple) -> tuple:
    """A bright textured image with 1-2 dark ellipses and its 0/255 mask."""
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
    img[mask > 0] *= rng.uniform(0.3, 0.5)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_multiclass_sample(rng: np.random.Generator, size: tuple) -> tuple:
    """Bright squares (class 1) and dark discs (class 2), and the ids."""
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


def make_demo_data(out: str, task: str = 'shadow', num_train: int = 32) -> str:
    """Write a demo dataset (``num_train`` + 8 images) and its tiny SAM into
    ``out`` (overwriting).

    Returns:
        str: The tiny SAM checkpoint's path.
    """
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}.')
    sample = make_shadow_sample if task == 'shadow' else \
        make_multiclass_sample
    rng = np.random.default_rng(0)
    for split, num in (('train', num_train), ('val', 8)):
        mkdir_or_exist(osp.join(out, split, 'images'))
        mkdir_or_exist(osp.join(out, split, 'masks'))
        for i in range(num):
            size = (int(rng.integers(96, 161)), int(rng.integers(96, 161)))
            img, mask = sample(rng, size)
            name = f'{split}_{i:03d}'
            cv2.imwrite(
                osp.join(out, split, 'images', name + '.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(out, split, 'masks', name + '.png'), mask)
    ckpt = osp.join(out, 'tiny_sam.pth')
    save_tiny_sam_checkpoint(ckpt)
    return ckpt


def build_missing_demo_data(cfg) -> List[str]:
    """Build the missing data and tiny SAM of a demo config
    (``demo_data = dict(task=...)``); other configs are left alone.

    Returns:
        list[str]: What was built, for the log.
    """
    demo: Optional[dict] = cfg.get('demo_data')
    if not demo:
        return []
    built = []
    task = demo.get('task', 'shadow')
    for root in sorted({d['data_root'] for d in dataset_cfgs(cfg)}):
        if not osp.isdir(osp.join(root, 'train', 'images')):
            make_demo_data(root, task)
            built.append(f'the {task} demo dataset and tiny SAM in {root}')
    sam = cfg.model.get('sam_checkpoint')
    if sam and not osp.isfile(sam):
        mkdir_or_exist(osp.dirname(osp.abspath(sam)))
        save_tiny_sam_checkpoint(sam)
        built.append(f'the tiny SAM {sam}')
    return built


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=TASKS, default='shadow')
    parser.add_argument(
        '--out', help='output folder (default: data/demo_<task>)')
    parser.add_argument('--num-train', type=int, default=32)
    args = parser.parse_args(argv)
    out = args.out or f'data/demo_{args.task}'
    ckpt = make_demo_data(out, args.task, args.num_train)
    print(f'Wrote {args.num_train} training and 8 validation images to '
          f'{out}/{{train,val}}/{{images,masks}} and a tiny SAM checkpoint '
          f'to {ckpt}.')


if __name__ == '__main__':
    main()
