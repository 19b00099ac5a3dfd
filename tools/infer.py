"""Predict masks for your own images with a trained model.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] --out DIR

INPUT: image files, folders or glob patterns. DIR gets ``masks/`` (in the
dataset's mask encoding), ``probs/`` and ``overlays/``, at each image's
size; see docs/inference.md.
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tools.config_checks import user_errors

with user_errors('--debug' in sys.argv):  # e.g. a broken torch install
    import mmseg_convlora  # noqa: F401  registers the plugin

import mmcv
import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

from mmseg_convlora.apis import (InferencePipeline, config_test_dataset,
                                 get_test_pipeline, init_segmentor)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Predict masks for images with a trained SAM segmentor')
    parser.add_argument(
        'config', help='the config the model was trained '
        'with')
    parser.add_argument('checkpoint', help='checkpoint from tools/train.py')
    parser.add_argument(
        'inputs',
        nargs='+',
        metavar='INPUT',
        help='image files, folders or glob patterns')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda (default: cuda if available)')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='opacity of the class colours in the overlays')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.sam_checkpoint=/path/to/sam_vit_b_01ec64.pth')
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of errors (they end in one line otherwise)')
    return parser.parse_args(argv)


def find_images(inputs: List[str]) -> Dict[str, str]:
    """Output name (no extension) -> image file, for files, folders and
    glob patterns.

    Raises:
        FileNotFoundError: An input that is no file, folder or matching
            pattern.
        ValueError: Two images that would get the same output name.
    """
    found: Dict[str, str] = {}

    def add(name: str, path: str) -> None:
        if name in found and osp.abspath(found[name]) != osp.abspath(path):
            raise ValueError(
                f'{found[name]!r} and {path!r} would both be written as '
                f'{name!r}; give them in separate runs or folders.')
        found[name] = path

    for item in inputs:
        if osp.isdir(item):
            files = sorted(
                p
                for p in glob.glob(osp.join(item, '**', '*'), recursive=True)
                if p.lower().endswith(IMAGE_SUFFIXES))
            if not files:
                raise FileNotFoundError(
                    f'No images ({", ".join(IMAGE_SUFFIXES)}) in the folder '
                    f'{item!r}.')
            for path in files:
                add(osp.splitext(osp.relpath(path, item))[0], path)
        elif osp.isfile(item):
            add(osp.splitext(osp.basename(item))[0], item)
        else:
            files = sorted(
                p for p in glob.glob(item, recursive=True) if osp.isfile(p))
            if not files:
                raise FileNotFoundError(
                    f'{item!r} is no image file, folder or glob pattern '
                    'that matches files.')
            for path in files:
                add(osp.splitext(osp.basename(path))[0], path)
    return found


def mask_colours(cfg) -> Optional[np.ndarray]:
    """The RGB colour of each class id in the dataset's mask files, for
    datasets whose masks are colour-coded (``mask_colours``), else None."""
    colours = getattr(config_test_dataset(cfg), 'mask_colours', None)
    return None if colours is None else np.array(colours, np.uint8)


def overlay(image: np.ndarray, pred: np.ndarray, palette,
            opacity: float) -> np.ndarray:
    """The image (BGR) with every predicted class but 0 (background)
    coloured (palette RGB) at ``opacity``."""
    colours = np.asarray(palette, dtype=np.float32)[:, ::-1]
    out = image.astype(np.float32)
    fg = pred > 0
    out[fg] = (1 - opacity) * out[fg] + opacity * colours[pred[fg]]
    return out.round().astype(np.uint8)


def write_prediction(sample, name: str, out: str, classes, palette,
                     colours: Optional[np.ndarray], opacity: float) -> None:
    probs = sample.seg_logits.data.float().cpu()
    pred = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
    if probs.shape[0] == 1:  # binary: dataset masks are 0/255
        mask = pred * 255
        mmcv.imwrite(((probs[0].clamp(0, 1) * 255).round().byte().numpy()),
                     osp.join(out, 'probs', name + '.png'))
    else:
        mask = pred if colours is None else colours[pred][..., ::-1]
        # the head's class scores (sums over its queries) as probabilities
        probs = probs / probs.sum(0, keepdim=True).clamp(min=1e-12)
        for c, class_name in enumerate(classes):
            mmcv.imwrite((probs[c].clamp(0, 1) * 255).round().byte().numpy(),
                         osp.join(out, 'probs', name, f'{class_name}.png'))
    mmcv.imwrite(mask, osp.join(out, 'masks', name + '.png'))
    image = mmcv.imread(sample.img_path)
    mmcv.imwrite(
        overlay(image, pred, palette, opacity),
        osp.join(out, 'overlays', name + '.png'))


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        infer(args)


def infer(args):
    images = find_images(args.inputs)
    model = init_segmentor(args.config, args.checkpoint, args.device,
                           args.cfg_options)
    pipeline = InferencePipeline(get_test_pipeline(model.cfg))
    meta = getattr(model, 'dataset_meta', None) or {}
    num_classes = max(2, model.decode_head.out_channels)
    classes = meta.get('classes') or tuple(f'class{i}'
                                           for i in range(num_classes))
    palette = meta.get('palette') or [[0, 0, 0]] + [[220, 20, 60]] * (
        num_classes - 1)
    colours = mask_colours(model.cfg)
    os.makedirs(args.out, exist_ok=True)
    print(f'Predicting {len(images)} images with {args.checkpoint} '
          f'({args.device}) into {args.out}/')
    progress = ProgressBar(len(images), file=sys.stdout)
    for name, path in images.items():
        data = pipeline(path)
        batch = dict(
            inputs=[data['inputs']], data_samples=[data['data_samples']])
        with torch.no_grad():
            sample = model.test_step(batch)[0]
        write_prediction(sample, name, args.out, classes, palette, colours,
                         args.opacity)
        progress.update()
    encoding = 'colour-coded' if colours is not None else (
        '0/255' if model.decode_head.out_channels == 1 else 'class ids')
    print(f'\nWrote masks/ ({encoding} PNG), probs/ and overlays/ for '
          f'{len(images)} images in {args.out}/')


if __name__ == '__main__':
    main()
