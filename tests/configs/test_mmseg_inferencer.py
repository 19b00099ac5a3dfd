"""mmseg's own ``MMSegInferencer`` and ``inference_model`` on every shipped
config (shrunk to the tiny SAM) with a trainable-only checkpoint: the same
prediction as the evaluation pipeline gives."""
import copy

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmseg.apis import MMSegInferencer, inference_model, init_model
from mmseg.registry import MODELS

from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from tools.make_demo_data import TINY_EMBED_DIM, TINY_ENCODER, TINY_IMG_SIZE
from helpers import SHIPPED_CONFIGS, tiny_config

# trains from cached embeddings, which new images do not have; its
# checkpoints predict with configs/cad/sbu_vit-b.py
CACHED = 'configs/cad/sbu_vit-b_cached.py'


class _Runner:

    def __init__(self, model):
        self.model = model
        self.cfg = dict(resume=False)


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    """A 100 x 150 (H x W) photo-like JPEG."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(
        rng.integers(0, 256, (100, 150, 3), dtype=np.uint8), (7, 7), 0)
    path = str(tmp_path_factory.mktemp('img') / 'photo.jpg')
    assert cv2.imwrite(path, img)
    return path


def small_config(path, sam_file):
    """``tiny_config``; compositions with mmseg's parts keep their model,
    with random weights at the tiny input size."""
    cfg = tiny_config(path, sam_file)
    model = cfg.model
    if model.backbone.type == 'PEFTBackbone':
        model.backbone.backbone.init_cfg = None  # no download
    elif not model.decode_head.type.startswith('SAM'):
        # tiny SAM blocks 0 and 1 -> UPerNet
        model.backbone.update(
            arch=copy.deepcopy(TINY_ENCODER),
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            out_indices=(0, 1))
        model.neck.update(in_channels=[32, 32], out_channels=16, scales=[2, 1])
        model.decode_head.update(
            in_channels=[16, 16],
            in_index=[0, 1],
            pool_scales=(1, 2),
            channels=16)
        model.auxiliary_head.update(in_channels=16, in_index=1, channels=8)
    return cfg


def save_trained(cfg, path):
    """A model of ``cfg`` with perturbed trainable weights, saved as
    training saves it (trainable weights and the dataset's classes)."""
    init_default_scope('mmseg')
    torch.manual_seed(0)  # random frozen weights (mmseg backbones) as below
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    meta = dict(dataset_meta=dict(classes=('a', 'b'), palette=[[0] * 3] * 2))
    ckpt = dict(state_dict=model.state_dict(), meta=meta)
    TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
    torch.save(ckpt, path)
    return model


def evaluation_prediction(model, cfg, image_file):
    """What evaluation predicts: the test dataloader's pipeline on a file
    without a mask (mmseg's mask loader, which needs one, left out)."""
    pipeline = Compose([
        t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        if t['type'] != 'LoadAnnotations'
    ])
    data = pipeline(dict(img_path=image_file))
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    with torch.no_grad():
        return model.test_step(batch)[0]


def assert_same(got, expected):
    assert got.pred_sem_seg.shape == (100, 150)
    torch.testing.assert_close(
        got.seg_logits.data, expected.seg_logits.data, rtol=0, atol=1e-5)
    assert torch.equal(got.pred_sem_seg.data, expected.pred_sem_seg.data)


@pytest.mark.parametrize('path', SHIPPED_CONFIGS)
def test_mmseg_inferencer_on_every_config(path, tiny_sam_file, image_file,
                                          tmp_path):
    if path == CACHED:
        pytest.skip(
            'predicts with its uncached twin, configs/cad/sbu_vit-b.py')
    cfg = small_config(path, tiny_sam_file[0])
    ckpt = str(tmp_path / 'best.pth')
    model = save_trained(cfg, ckpt)
    expected = evaluation_prediction(model, cfg, image_file)
    torch.manual_seed(0)
    inferencer = MMSegInferencer(copy.deepcopy(cfg), ckpt, device='cpu')
    for image in (image_file, cv2.imread(image_file)):
        got = inferencer(image, return_datasamples=True)
        assert_same(got, expected)


@pytest.mark.parametrize(
    'path', ['configs/convlora/sbu.py', 'configs/lora/polyp_vit-b.py'])
def test_inference_model_on_path_array_path(path, tiny_sam_file, image_file,
                                            tmp_path):
    """mmseg's ``inference_model`` rewrites ``model.cfg.test_pipeline[0]``
    for arrays; a path after an array needs ``model.cfg`` restored (see
    docs), which is what this test does between the calls."""
    cfg = tiny_config(path, tiny_sam_file[0])
    ckpt = str(tmp_path / 'best.pth')
    expected = evaluation_prediction(save_trained(cfg, ckpt), cfg, image_file)
    cfg_file = str(tmp_path / 'config.py')
    cfg.dump(cfg_file)
    model = init_model(cfg_file, ckpt, device='cpu')
    assert_same(inference_model(model, image_file), expected)
    pristine = copy.deepcopy(model.cfg)
    assert_same(inference_model(model, cv2.imread(image_file)), expected)
    with pytest.raises(KeyError):  # mmseg 1.2.2's own behaviour
        inference_model(model, image_file)
    model.cfg = copy.deepcopy(pristine)
    assert_same(inference_model(model, image_file), expected)
