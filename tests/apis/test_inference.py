"""mmseg's init_model / inference_model and SAMSegInferencer on the shipped
configs (shrunk to the tiny SAM) with trainable-only checkpoints."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.apis import inference_model, init_model
from mmseg.apis.utils import _preprare_data
from mmseg.registry import MODELS

from mmseg_convlora.apis import (InferencePipeline, SAMSegInferencer,
                                 config_dataset_meta, get_test_pipeline,
                                 inference_config, init_segmentor)
from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from helpers import SHIPPED_CONFIGS, tiny_config

# trains from cached embeddings, which new images do not have: mmseg's own
# init_model/inference_model need its uncached twin (same checkpoints)
CACHED = 'configs/cad/sbu_vit-b_cached.py'
REPRESENTATIVE = [
    'configs/convlora/sbu.py',  # binary, Conv-LoRA
    'configs/lora/polyp_vit-b.py',  # several test sets, LoRA
    'configs/cad/camouflage_vit-b.py',  # CAD, several test sets
    'configs/convlora/trans10k-v2_vit-b.py',  # multi-class
    'configs/demo/tiny_multiclass.py',  # multi-class, mmseg's loader
    'configs/convlora_vpt/sbu.py',  # two adapters
    CACHED,
]


class _Runner:

    def __init__(self, model):
        self.model = model
        self.cfg = dict(resume=False)


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    """A 100 x 150 (H x W) photo-like JPEG."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (7, 7), 0)
    path = str(tmp_path_factory.mktemp('img') / 'photo.jpg')
    assert cv2.imwrite(path, img)
    return path


def model_input_shape(cfg, inputs, sample):
    """The shape the data preprocessor makes of one prepared image: SAM
    configs on mmseg's datasets resize to a longer side of 128 and pad to
    the square there (``test_cfg``)."""
    preprocessor = cfg.model.data_preprocessor
    if not preprocessor.get('test_cfg'):
        return tuple(inputs.shape)
    out = MODELS.build(preprocessor)(dict(
        inputs=[inputs], data_samples=[sample]), False)
    return tuple(out['inputs'][0].shape)


@pytest.mark.parametrize('path', SHIPPED_CONFIGS)
def test_every_config_prepares_new_images(path, tiny_sam_file, image_file):
    cfg = tiny_config(path, tiny_sam_file[0])
    pipeline = InferencePipeline(get_test_pipeline(inference_config(cfg)))
    # SAM takes a square input; mmseg's backbones keep the aspect ratio
    square = cfg.model.backbone.type != 'PEFTBackbone'
    expected = (3, 128, 128) if square else (3, 85, 128)
    for image in (image_file, cv2.imread(image_file)):
        data = pipeline(image)
        assert model_input_shape(cfg, data['inputs'],
                                 data['data_samples']) == expected
        sample = data['data_samples']
        assert sample.ori_shape == (100, 150)
        assert 'gt_sem_seg' not in sample
    if path == CACHED:
        return

    class Model:  # what mmseg's _preprare_data reads
        pass

    model = Model()
    model.cfg = cfg
    for image in (image_file, cv2.imread(image_file)):
        data, _ = _preprare_data(image, model)
        assert model_input_shape(cfg, data['inputs'][0],
                                 data['data_samples'][0]) == expected
        assert 'gt_sem_seg' not in data['data_samples'][0]


def trained_checkpoint(cfg, path, with_meta=True):
    """A model of ``cfg`` with perturbed trainable weights, saved as
    training saves it; returns the model."""
    init_default_scope('mmseg')
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    meta = dict(dataset_meta=config_dataset_meta(cfg)) if with_meta else {}
    ckpt = dict(state_dict=model.state_dict(), meta=meta)
    TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
    torch.save(ckpt, path)
    return model


def reference(model, cfg, image):
    """The prediction of the in-memory model on ``image``."""
    pipeline = InferencePipeline(get_test_pipeline(inference_config(cfg)))
    data = pipeline(image)
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    with torch.no_grad():
        return model.test_step(batch)[0]


def assert_same_prediction(got, expected):
    assert got.pred_sem_seg.shape == (100, 150)
    torch.testing.assert_close(
        got.seg_logits.data, expected.seg_logits.data, rtol=0, atol=1e-6)
    assert torch.equal(got.pred_sem_seg.data, expected.pred_sem_seg.data)


@pytest.mark.parametrize('path', REPRESENTATIVE)
def test_mmseg_inference_apis_with_trainable_only_checkpoint(
        path, tiny_sam_file, image_file, tmp_path):
    cfg = tiny_config(path, tiny_sam_file[0])
    ckpt = str(tmp_path / 'best.pth')
    if path == CACHED:
        # the cache of the training config is not needed to predict
        cfg.model.backbone.embedding_source.dir = str(tmp_path / 'no_cache')
        model = trained_checkpoint(inference_config(cfg), ckpt)
    else:
        model = trained_checkpoint(cfg, ckpt)
    cfg_file = str(tmp_path / 'config.py')
    cfg.dump(cfg_file)
    expected = reference(model, cfg, image_file)

    inferencer = SAMSegInferencer(cfg_file, ckpt, device='cpu')
    assert inferencer.model.dataset_meta == config_dataset_meta(cfg)
    results = inferencer([image_file, cv2.imread(image_file)],
                         return_datasamples=True)
    for got in results:
        assert_same_prediction(got, expected)

    if path == CACHED:
        return
    mmseg_model = init_model(cfg_file, ckpt, device='cpu')
    assert mmseg_model.dataset_meta['classes'] == \
        config_dataset_meta(cfg)['classes']
    assert_same_prediction(inference_model(mmseg_model, image_file), expected)
    assert_same_prediction(
        inference_model(mmseg_model, cv2.imread(image_file)), expected)


def test_inferencer_writes_mmseg_outputs(tiny_sam_file, image_file, tmp_path):
    cfg = tiny_config('configs/convlora/sbu.py', tiny_sam_file[0])
    ckpt = str(tmp_path / 'best.pth')
    trained_checkpoint(cfg, ckpt, with_meta=False)
    cfg_file = str(tmp_path / 'config.py')
    cfg.dump(cfg_file)
    inferencer = SAMSegInferencer(cfg_file, ckpt, device='cpu')
    # classes from the config's dataset, not mmseg's Cityscapes default
    assert inferencer.model.dataset_meta['classes'] == ('non-shadow', 'shadow')
    out = inferencer(image_file, out_dir=str(tmp_path / 'out'))
    assert out['predictions'].shape == (100, 150)
    assert osp.isfile(str(tmp_path / 'out' / 'vis' / 'photo.jpg'))
    assert osp.isfile(str(tmp_path / 'out' / 'pred' / '00000000_pred.png'))


def test_init_segmentor_predicts_with_the_encoder_for_cached_configs(
        tiny_sam_file):
    cfg = tiny_config(CACHED, tiny_sam_file[0])
    model = init_segmentor(cfg)
    assert model.backbone.encoder is not None
    assert 'LoadCachedEmbedding' not in str(model.cfg.test_dataloader)


def test_pipeline_without_image_loader_is_refused():
    with pytest.raises(ValueError, match='no image loader'):
        InferencePipeline(
            [dict(type='Resize', scale=(8, 8)),
             dict(type='PackSegInputs')])
