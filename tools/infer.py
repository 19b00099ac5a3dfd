"""Predict masks for your own images with a trained (or ONNX) model.

DIR gets ``masks/`` (in the dataset's mask encoding), ``probs/`` and
``overlays/`` at each image's size; see docs/inference.md, docs/deploy.md.
"""
import argparse
import glob
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tools.config_checks import user_errors

with user_errors('--debug' in sys.argv):  # e.g. a broken torch install
    import mmseg_convlora  # noqa: F401  registers the plugin

import mmcv
import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar, mkdir_or_exist

from mmseg_convlora.apis import (InferencePipeline, config_test_dataset,
                                 get_test_pipeline, inference_config,
                                 init_segmentor)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def model_parser(description: str,
                 config: str = 'the config the model was trained with',
                 checkpoint: str = 'checkpoint from tools/train.py',
                 device: bool = False) -> argparse.ArgumentParser:
    """The arguments of the tools that load a model: CONFIG, CHECKPOINT
    (unless its help ``checkpoint`` is None), ``--device`` (if ``device``)
    and ``--cfg-options``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config)
    if checkpoint:
        parser.add_argument('checkpoint', help=checkpoint)
    if device:
        parser.add_argument(
            '--device',
            default='cuda' if torch.cuda.is_available() else 'cpu',
            help='cpu or cuda (default: cuda if available)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.sam_checkpoint=/path/to/sam_vit_b_01ec64.pth')
    return parser


def parse_args(argv=None):
    parser = model_parser(
        'Predict masks for images with a trained SAM segmentor', device=True)
    parser.add_argument(
        'inputs',
        nargs='+',
        metavar='INPUT',
        help='image files, folders or glob patterns')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'onnxruntime'],
        default='pytorch',
        help='onnxruntime: CHECKPOINT is a model.onnx written by '
        'tools/deploy/export_onnx.py for CONFIG')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='opacity of the class colours in the overlays')
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of errors (they end in one line otherwise)')
    return parser.parse_args(argv)


def find_images(inputs: list) -> dict:
    """Output name (no extension) -> image file, of files, folders and glob
    patterns.

    Raises:
        FileNotFoundError: An input that matches no image.
        ValueError: Two images that would get the same output name.
    """
    found = {}
    for item in inputs:
        if osp.isdir(item):
            paths = glob.glob(osp.join(item, '**', '*'), recursive=True)
            files = {
                p: osp.relpath(p, item)
                for p in paths if p.lower().endswith(IMAGE_SUFFIXES)
            }
        else:
            paths = [item] if osp.isfile(item) else glob.glob(
                item, recursive=True)
            files = {p: osp.basename(p) for p in paths if osp.isfile(p)}
        if not files:
            raise FileNotFoundError(
                f'{item!r} is no image file, glob pattern that matches files '
                f'or folder with {"/".join(IMAGE_SUFFIXES)} images.')
        for path in sorted(files):
            name = osp.splitext(files[path])[0]
            if osp.abspath(found.setdefault(name, path)) != osp.abspath(path):
                raise ValueError(
                    f'{found[name]!r} and {path!r} would both be written as '
                    f'{name!r}; give them in separate runs or folders.')
    return found


def overlay(image: np.ndarray, pred: np.ndarray, palette,
            opacity: float) -> np.ndarray:
    """The BGR image with each class but 0 in its (RGB) palette colour."""
    colours = np.asarray(palette, dtype=np.float32)[:, ::-1]
    out = image.astype(np.float32)
    fg = pred > 0
    out[fg] = (1 - opacity) * out[fg] + opacity * colours[pred[fg]]
    return out.round().astype(np.uint8)


def write_prediction(sample, name: str, out: str, classes, palette, colours,
                     opacity: float) -> None:
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
    mmcv.imwrite(
        overlay(mmcv.imread(sample.img_path), pred, palette, opacity),
        osp.join(out, 'overlays', name + '.png'))


def pytorch_backend(args):
    """``predict(path) -> SegDataSample``, config, dataset meta, number of
    output channels."""
    model = init_segmentor(args.config, args.checkpoint, args.device,
                           args.cfg_options)
    pipeline = InferencePipeline(get_test_pipeline(model.cfg))

    @torch.no_grad()
    def predict(path):
        return model.test_step(pseudo_collate([pipeline(path)]))[0]

    meta = getattr(model, 'dataset_meta', None) or {}
    return predict, model.cfg, meta, model.decode_head.out_channels


def onnxruntime_backend(args):
    """:func:`pytorch_backend` of an ``ONNXSegPredictor``."""
    from mmcv.transforms import LoadImageFromFile
    from mmengine.dataset import Compose
    from mmengine.structures import PixelData
    from mmseg.registry import TRANSFORMS
    from mmseg.structures import SegDataSample

    from mmseg_convlora.deploy import ONNXSegPredictor
    cfg = inference_config(args.config, args.cfg_options)
    predictor = ONNXSegPredictor(args.checkpoint)
    # the pipeline's leading loading (and checking) steps: 8-bit BGR
    steps = get_test_pipeline(cfg)
    end = next(
        i for i, t in enumerate(steps) if t['type'] != 'CheckImage'
        and not issubclass(TRANSFORMS.get(t['type']), LoadImageFromFile))
    load = Compose(steps[:end])

    def predict(path):
        pred = predictor(load(dict(img_path=path))['img'])
        sample = SegDataSample(metainfo=dict(img_path=path))
        sample.seg_logits = PixelData(data=torch.from_numpy(pred.probs))
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred.mask)[None])
        return sample

    return predict, cfg, predictor.meta, predictor.num_outputs


def infer(args):
    images = find_images(args.inputs)
    backend = onnxruntime_backend if args.backend == 'onnxruntime' \
        else pytorch_backend
    predict, cfg, meta, out_channels = backend(args)
    num_classes = max(2, out_channels)
    classes = meta.get('classes') or [f'class{i}' for i in range(num_classes)]
    palette = meta.get('palette') or [[0, 0, 0]] + [[220, 20, 60]] * (
        num_classes - 1)
    # datasets whose masks are colour-coded
    colours = getattr(config_test_dataset(cfg), 'mask_colours', None)
    colours = None if colours is None else np.array(colours, np.uint8)
    mkdir_or_exist(args.out)
    print(f'Predicting {len(images)} images with {args.checkpoint} '
          f'({args.device}) into {args.out}/')
    progress = ProgressBar(len(images), file=sys.stdout)
    for name, path in images.items():
        write_prediction(
            predict(path), name, args.out, classes, palette, colours,
            args.opacity)
        progress.update()
    encoding = 'colour-coded' if colours is not None else (
        '0/255' if out_channels == 1 else 'class ids')
    print(f'\nWrote masks/ ({encoding} PNG), probs/ and overlays/ for '
          f'{len(images)} images in {args.out}/')


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        infer(args)


if __name__ == '__main__':
    main()
