"""Export a trained model to ONNX: image in, per-class probabilities out.

The pre- and post-processing go into the file's metadata for
``mmseg_convlora.deploy.ONNXSegPredictor``; see docs/deploy.md.
"""
import json
import logging
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import LoadAnnotations, LoadImageFromFile
from mmseg.registry import TRANSFORMS

from mmseg_convlora.apis import get_test_pipeline, init_segmentor
from mmseg_convlora.deploy import META_KEY, ONNXSegPredictor
from mmseg_convlora.models.adapters import CAD, ConvLoRA, LoRA
from tools.infer import model_parser

OPSET = 20
# test-pipeline steps that do not change the network input
PASSIVE_STEPS = ('CheckImage', 'CheckSegLabels', 'PackSegInputs',
                 'PackCADInputs', 'LoadTrans10KAnnotations')


class ExportedSegmentor(nn.Module):
    """A segmentor as one function: ``(image[, cad_image]) -> probs``.

    Args:
        segmentor (nn.Module): A :class:`SAMSegmentor` in eval mode.
    """

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    def features(self, image, cad_image):
        seg = self.segmentor
        if cad_image is None:
            return seg.extract_feat(image)
        features, embedding = seg.backbone.forward_encoder(image)
        for adapter in seg.backbone.adapters:
            if isinstance(adapter, CAD):
                delta = adapter.adapter_output(
                    image, embedding.shape[-2:], image=cad_image)
                embedding = embedding + delta.to(embedding.dtype)
            else:
                embedding = adapter.forward_embedding(image, embedding)
        return tuple(features) + (embedding, )

    def forward(self, image, cad_image=None):
        head = self.segmentor.decode_head
        size = tuple(image.shape[-2:])
        scores = head.predict_by_feat(
            head.forward(self.features(image, cad_image)),
            [dict(img_shape=size, pad_shape=size)]).float()
        # as SAMSegmentor.postprocess_result, before cropping and resizing
        if scores.shape[1] == 1:
            return scores.sigmoid()
        if getattr(head, 'returns_probabilities', False):
            return scores
        return scores.softmax(dim=1)


def processing(cfg, model) -> dict:
    """The pre- and post-processing of ``cfg`` (what the predictor does).

    Raises:
        ValueError: A test-pipeline step the predictor cannot reproduce.
    """
    dp = cfg.model.data_preprocessor
    size = ((dp.get('test_cfg') or {}).get('size') or dp.get('size')
            or (model.backbone.img_size, ) * 2)
    meta = dict(
        size=list(size),
        resize=None,
        cad_image=None,
        mean=dp.get('mean'),
        std=dp.get('std'),
        bgr_to_rgb=bool(dp.get('bgr_to_rgb', False)),
        pad_val=dp.get('pad_val', 0),
        threshold=model.decode_head.threshold,
        align_corners=model.align_corners)
    for step in get_test_pipeline(cfg):
        name = step['type']
        if name == 'Resize' and step.get('scale') is not None:
            meta['resize'] = dict(
                scale=list(step['scale']),
                keep_ratio=step.get('keep_ratio', False),
                interpolation=step.get('interpolation', 'bilinear'))
        elif name == 'ResizeCADImage' and \
                step.get('interpolation', 'bilinear') == 'bilinear':
            meta['cad_image'] = dict(
                size=step.get('size', 512), to_rgb=step.get('to_rgb', True))
        elif not (name in PASSIVE_STEPS or issubclass(
                TRANSFORMS.get(name), (LoadImageFromFile, LoadAnnotations))):
            raise ValueError(
                f'The test pipeline step {step} has no counterpart in the '
                'ONNX predictor (Resize with scale, ResizeCADImage, loaders '
                'and packing only); remove it from the test pipeline.')
    dataset_meta = getattr(model, 'dataset_meta', None) or {}
    meta['classes'] = list(dataset_meta.get('classes') or []) or None
    meta['palette'] = dataset_meta.get('palette')
    return meta


def prepare(model: nn.Module) -> nn.Module:
    """LoRA merged into the frozen weights, Conv-LoRA dispatching densely
    (no data-dependent shapes in the graph)."""
    for adapter in getattr(model.backbone, 'adapters', []):
        if isinstance(adapter, LoRA):
            adapter.merge()
        elif isinstance(adapter, ConvLoRA):
            adapter.set_dispatch('dense')
    return model


def export(model: nn.Module, meta: dict, out: str) -> None:
    """Write ``model`` (prepared, eval) with ``meta`` to ``out``."""
    inputs = {'image': torch.zeros(2, 3, *meta['size'])}
    if meta['cad_image'] is not None:
        size = meta['cad_image']['size']
        inputs['cad_image'] = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim('batch')
    # onnx_ir warns about every empty attribute list
    logging.getLogger('onnx_ir').setLevel(logging.ERROR)
    with torch.no_grad():
        program = torch.onnx.export(
            ExportedSegmentor(model).eval(),
            tuple(inputs.values()),
            dynamo=True,
            opset_version=OPSET,
            input_names=list(inputs),
            output_names=['probs'],
            dynamic_shapes=tuple({0: batch} for _ in inputs),
            verbose=False)
    program.model.metadata_props[META_KEY] = json.dumps(meta)
    # one file up to protobuf's 2 GB; ViT-H puts its weights beside it
    large = sum(p.numel() * p.element_size() for p in model.parameters())
    program.save(out, external_data=large > 1.5e9)


def check(model: nn.Module, out: str) -> float:
    """Max abs difference of the ONNX and the PyTorch probabilities on a
    random batch of 2."""
    predictor = ONNXSegPredictor(out)
    gen = torch.Generator().manual_seed(0)
    feeds = {
        i.name: torch.randn(2, *i.shape[1:], generator=gen)
        for i in predictor.session.get_inputs()
    }
    if 'cad_image' in feeds:
        feeds['cad_image'] = (feeds['cad_image'] * 60 + 128).clamp(0, 255)
    with torch.no_grad():
        expected = ExportedSegmentor(model)(**feeds).numpy()
    feeds = {k: v.numpy() for k, v in feeds.items()}
    return float(
        np.abs(predictor.session.run(None, feeds)[0] - expected).max())


def main(argv=None):
    parser = model_parser('Export a trained SAM segmentor to ONNX')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--check',
        action='store_true',
        help='compare onnxruntime with PyTorch on a random batch')
    args = parser.parse_args(argv)
    try:
        import onnxscript  # noqa: F401  the dynamo exporter's backend
    except ModuleNotFoundError as err:
        raise SystemExit(f'{err}: install the deploy requirements: pip '
                         'install -r requirements-deploy.txt')
    model = init_segmentor(args.config, args.checkpoint, 'cpu',
                           args.cfg_options)
    meta = processing(model.cfg, model)
    export(prepare(model), meta, args.out)
    print(f'Wrote {args.out} (opset {OPSET}, inputs '
          f'{"image, cad_image" if meta["cad_image"] else "image"}).')
    if args.check:
        print(f'Max |onnxruntime - PyTorch| probability on a random batch: '
              f'{check(model, args.out):.2e}')


if __name__ == '__main__':
    main()
