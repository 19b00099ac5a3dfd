"""ONNXSegPredictor's own steps: resizing as mmcv and PyTorch do, padding
and cropping, refusals (a small hand-made ONNX model, no export)."""
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Resize

from mmseg_convlora.deploy import (META_KEY, ONNXSegPredictor, resize_bilinear,
                                   resize_image)

onnx = pytest.importorskip('onnx')  # requirements-deploy.txt: Python >= 3.11
pytest.importorskip('onnxruntime')
TensorProto, helper = onnx.TensorProto, onnx.helper


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('size_in,size_out', [((128, 128), (60, 90)),
                                              ((64, 64), (300, 517)),
                                              ((100, 128), (37, 1000)),
                                              ((9, 9), (9, 9))])
def test_resize_bilinear_equals_interpolate(size_in, size_out, align_corners):
    x = np.random.default_rng(0).random((3, *size_in), dtype=np.float32)
    want = F.interpolate(
        torch.from_numpy(x)[None],
        size_out,
        mode='bilinear',
        align_corners=align_corners)[0].numpy()
    got = resize_bilinear(x, size_out, align_corners)
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-7)


@pytest.mark.parametrize('keep_ratio', [False, True])
@pytest.mark.parametrize('shape', [(60, 90), (301, 77), (128, 128)])
def test_resize_image_equals_mmcv_resize(shape, keep_ratio):
    img = np.random.default_rng(1).integers(0, 256, (*shape, 3), np.uint8)
    want = Resize(scale=(128, 96), keep_ratio=keep_ratio)(dict(img=img))['img']
    got = resize_image(
        img,
        dict(scale=(128, 96), keep_ratio=keep_ratio, interpolation='bilinear'))
    np.testing.assert_array_equal(got, want)


def toy_model(path, meta=None):
    """probs = the image's first channel, (B, 1, 8, 8)."""
    image = helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                          ['batch', 3, 8, 8])
    probs = helper.make_tensor_value_info('probs', TensorProto.FLOAT,
                                          ['batch', 1, 8, 8])
    consts = [
        helper.make_tensor(n, TensorProto.INT64, [1], [v])
        for n, v in (('start', 0), ('end', 1), ('axis', 1))
    ]
    graph = helper.make_graph([
        helper.make_node('Slice', ['image', 'start', 'end', 'axis'], ['probs'])
    ], 'toy', [image], [probs], consts)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    if meta is not None:
        helper.set_model_props(model, {META_KEY: json.dumps(meta)})
    onnx.save(model, str(path))
    return str(path)


def test_pad_crop_and_threshold_by_hand(tmp_path):
    """An 8x4 image keep-ratio resized into the 8x8 input is padded at the
    right; the output is cropped back and resized to 2x1."""
    meta = dict(
        size=[8, 8],
        resize=dict(scale=[8, 8], keep_ratio=True, interpolation='nearest'),
        cad_image=None,
        mean=[100, 0, 0],
        std=[100, 1, 1],
        bgr_to_rgb=True,
        pad_val=0,
        threshold=0.5,
        align_corners=False,
        classes=None,
        palette=None)
    predictor = ONNXSegPredictor(toy_model(tmp_path / 'toy.onnx', meta))
    img = np.zeros((2, 1, 3), np.uint8)
    img[0, 0, 2], img[1, 0, 2] = 180, 120  # red (BGR) 180 over 120
    inputs, valid = predictor.preprocess(img)
    assert valid == (8, 4)
    np.testing.assert_allclose(inputs['image'][0, :4, :4], 0.8)
    np.testing.assert_allclose(inputs['image'][0, 4:, :4], 0.2)
    assert (inputs['image'][:, :, 4:] == 0).all()  # the padding
    pred = predictor(img)
    np.testing.assert_allclose(pred.probs, [[[0.8], [0.2]]], rtol=1e-6)
    np.testing.assert_array_equal(pred.mask, [[1], [0]])


def test_refusals(tmp_path):
    with pytest.raises(ValueError, match='export_onnx.py'):
        ONNXSegPredictor(toy_model(tmp_path / 'plain.onnx'))
    meta = dict(
        size=[8, 8],
        resize=None,
        cad_image=None,
        mean=None,
        std=None,
        bgr_to_rgb=False,
        pad_val=0,
        threshold=0.5,
        align_corners=False,
        classes=None,
        palette=None)
    predictor = ONNXSegPredictor(toy_model(tmp_path / 'toy.onnx', meta))
    with pytest.raises(ValueError, match='uint8 BGR'):
        predictor(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match='larger than the network input'):
        predictor(np.zeros((9, 8, 3), np.uint8))


def test_missing_onnxruntime_names_the_requirements(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(ModuleNotFoundError, match='requirements-deploy.txt'):
        ONNXSegPredictor(str(tmp_path / 'model.onnx'))
