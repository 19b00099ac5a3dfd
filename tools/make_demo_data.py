"""Generate the CPU demos: small synthetic datasets and a tiny SAM.

    python tools/make_demo_data.py [--task shadow|multiclass] [--out DIR]

``--task shadow`` (default, into ``data/demo_shadow``): ``train/`` and
``val/`` with ``images/*.jpg`` and 0/255 ``masks/*.png`` (dark elliptical
"shadows" on textured bright ground, images of varied sizes).
``--task multiclass`` (into ``data/demo_multiclass``): the same ground with
bright squares (class 1) and dark discs (class 2); masks hold class ids.
Both also get ``tiny_sam.pth``: a randomly initialised small SAM saved in
the official checkpoint layout, so the demo runs the same loading code as
the real weights. Nothing is downloaded.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def make_sample(rng: np.random.Generator, size: tuple):
    h, w = size
    base = rng.uniform(150, 220)
    img = base + rng.normal(0, 12, (h, w, 1)) + rng.normal(0, 6, (h, w, 3))
    # smooth illumination so that brightness alone is not a perfect cue
    yy, xx = np.mgrid[0:h, 0:w]
    img += 25 * np.sin(xx / w * np.pi * rng.uniform(0.5, 2))[..., None]
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 3)):
        center = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
        axes = (int(rng.uniform(0.1, 0.3) * w), int(rng.uniform(0.1, 0.3) * h))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    255, -1)
    shadow = mask > 0
    img[shadow] *= rng.uniform(0.3, 0.5)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_multiclass_sample(rng: np.random.Generator, size: tuple):
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=['shadow', 'multiclass'],
                        default='shadow')
    parser.add_argument('--out', help='output folder (default '
                        'data/demo_shadow or data/demo_multiclass)')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    from mmseg_convlora.utils import save_tiny_sam_checkpoint

    out = args.out or f'data/demo_{args.task}'
    sample = make_sample if args.task == 'shadow' else make_multiclass_sample
    rng = np.random.default_rng(args.seed)
    for split, num in (('train', args.num_train), ('val', args.num_val)):
        for sub in ('images', 'masks'):
            os.makedirs(osp.join(out, split, sub), exist_ok=True)
        for i in range(num):
            size = (int(rng.integers(96, 161)), int(rng.integers(96, 161)))
            img, mask = sample(rng, size)
            name = f'{split}_{i:03d}'
            cv2.imwrite(osp.join(out, split, 'images', name + '.jpg'),
                        img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(out, split, 'masks', name + '.png'),
                        mask)
    ckpt = osp.join(out, 'tiny_sam.pth')
    save_tiny_sam_checkpoint(ckpt, seed=args.seed)
    print(f'Wrote {args.num_train} training and {args.num_val} validation '
          f'images to {out}/{{train,val}}/{{images,masks}} and a tiny '
          f'SAM checkpoint to {ckpt}.')


if __name__ == '__main__':
    main()
