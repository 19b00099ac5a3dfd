"""Generate the CPU demo: a small synthetic shadow dataset and a tiny SAM.

    python tools/make_demo_data.py [--out data/demo_shadow] [--seed 0]

Writes ``train/`` and ``val/`` with ``images/*.jpg`` and 0/255
``masks/*.png`` (dark elliptical "shadows" on textured bright ground, images
of varied sizes), and ``tiny_sam.pth``: a randomly initialised small SAM
saved in the official checkpoint layout, so the demo runs the same loading
code as the real weights. Nothing is downloaded.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo_shadow')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    from mmseg_convlora.utils import save_tiny_sam_checkpoint

    rng = np.random.default_rng(args.seed)
    for split, num in (('train', args.num_train), ('val', args.num_val)):
        for sub in ('images', 'masks'):
            os.makedirs(osp.join(args.out, split, sub), exist_ok=True)
        for i in range(num):
            size = (int(rng.integers(96, 161)), int(rng.integers(96, 161)))
            img, mask = make_sample(rng, size)
            name = f'{split}_{i:03d}'
            cv2.imwrite(osp.join(args.out, split, 'images', name + '.jpg'),
                        img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(args.out, split, 'masks', name + '.png'),
                        mask)
    ckpt = osp.join(args.out, 'tiny_sam.pth')
    save_tiny_sam_checkpoint(ckpt, seed=args.seed)
    print(f'Wrote {args.num_train} training and {args.num_val} validation '
          f'images to {args.out}/{{train,val}}/{{images,masks}} and a tiny '
          f'SAM checkpoint to {ckpt}.')


if __name__ == '__main__':
    main()
