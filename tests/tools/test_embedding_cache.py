"""The CAD embedding cache: ``tools/cache_embeddings.py`` round trip (the
loss from cached embeddings equals the loss with the encoder, flips
included), the encoder is never built, and stale caches are refused."""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmseg.registry import DATASETS, MODELS

from mmseg_convlora.embedding_cache import LoadCachedEmbedding
from mmseg_convlora.embedding_cache.cache_format import (EmbeddingCacheError,
                                                         check_pipeline,
                                                         read_manifest)
from helpers import demo_config, load_tool, run_tool, save_tiny_sam_checkpoint

CAD = dict(type='CAD', channels=32, input_size=64)


def cached_config(data_dir, work_dir, cache_dir, adapter=CAD):
    """The demo config as a CAD model trained from cached embeddings."""
    cfg = demo_config(data_dir, work_dir)
    cfg.model.backbone.adapter = copy.deepcopy(adapter)
    cfg.model.backbone.embedding_source = dict(
        type='CachedEmbeddings', dir=cache_dir)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.pipeline = list(cfg[key].dataset.pipeline) + [
            dict(type='LoadCachedEmbedding', cache_dir=cache_dir)
        ]
    return cfg


@pytest.fixture(scope='module')
def cache(demo_data, tmp_path_factory):
    """(config path, cache dir) of a float32 cache of the demo data."""
    root = tmp_path_factory.mktemp('cache')
    cache_dir = str(root / 'emb_cache')
    cfg = cached_config(demo_data, str(root / 'work'), cache_dir)
    path = str(root / 'cad_cached.py')
    cfg.dump(path)
    load_tool('cache_embeddings.py').main(
        [path, '--dtype', 'float32', '--batch-size', '4'])
    return path, cache_dir, cfg


def test_cache_layout_and_manifest(cache, demo_data, capsys):
    path, cache_dir, _ = cache
    # running the tool again on an up-to-date cache computes nothing
    load_tool('cache_embeddings.py').main([path, '--dtype', 'float32'])
    assert '0 embeddings written' in capsys.readouterr().out
    manifest = read_manifest(cache_dir)
    # 32 train + 8 val images, both flips each
    assert len(manifest['entries']) == 40
    assert len(glob.glob(osp.join(cache_dir, 'emb', '*.npy'))) == 80
    assert manifest['img_size'] == 128 and manifest['out_channels'] == 32
    import hashlib
    with open(osp.join(demo_data, 'tiny_sam.pth'), 'rb') as f:
        assert manifest['sam_sha256'] == hashlib.sha256(f.read()).hexdigest()
    entry = manifest['entries']['train/images/train_000.jpg']
    emb = np.load(osp.join(cache_dir, entry['noflip']))
    assert emb.shape == (32, 8, 8) and emb.dtype == np.float32
    assert not np.allclose(emb, np.load(osp.join(cache_dir, entry['hflip'])))


def batch_through(cfg, pipeline, n=4):
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    pipe = Compose(pipeline)
    return pseudo_collate([pipe(dataset.get_data_info(i)) for i in range(n)])


def test_loss_from_cache_equals_loss_with_encoder(cache):
    _, cache_dir, cfg = cache
    assert_cache_matches_encoder(cfg)


def with_cad_image_steps(cfg):
    """``cfg`` with CAD's input image kept by the pipelines."""
    cfg = copy.deepcopy(cfg)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        steps = list(cfg[key].dataset.pipeline)
        steps.insert(1, dict(type='ResizeCADImage', size=64))
        cfg[key].dataset.pipeline = [
            dict(type='PackCADInputs') if t['type'] == 'PackSegInputs' else t
            for t in steps
        ]
    return cfg


def test_cache_with_the_cad_image_steps(cache, tmp_path, capsys):
    """The tool takes a config whose pipelines keep CAD's image (the encoder
    needs neither step: the cached embeddings are the same ones), and the
    cached model, fed that image, still trains and predicts as the model
    with the encoder."""
    path, cache_dir, cfg = cache
    cad_cfg = with_cad_image_steps(cfg)
    cad_path = str(tmp_path / 'cad_image_cached.py')
    cad_cfg.dump(cad_path)
    load_tool('cache_embeddings.py').main([cad_path, '--dtype', 'float32'])
    assert '0 embeddings written' in capsys.readouterr().out
    assert_cache_matches_encoder(cad_cfg, expect_cad_image=True)


def assert_cache_matches_encoder(cfg, expect_cad_image=False):
    cached = MODELS.build(ConfigDict(cfg.model))
    assert cached.backbone.encoder is None
    assert not any(
        k.startswith('backbone.encoder') for k in cached.state_dict())
    plain_cfg = copy.deepcopy(cfg.model)
    plain_cfg.backbone.pop('embedding_source')
    plain = MODELS.build(ConfigDict(plain_cfg))
    missing, unexpected = plain.load_state_dict(
        cached.state_dict(), strict=False)
    assert not unexpected and all('backbone.encoder.' in k for k in missing)

    # flip half of the images: the flipped embedding must be used for them
    pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    for t in pipeline:
        if t['type'] == 'RandomFlip':
            t['prob'] = 1.0
    for flipped in (False, True):
        pipe = [t for t in pipeline if flipped or t['type'] != 'RandomFlip']
        data = batch_through(cfg, pipe)
        assert all(
            s.metainfo.get('flip', False) == flipped
            for s in data['data_samples'])
        assert all(('cad_image' in s) == expect_cad_image
                   for s in data['data_samples'])
        results = []
        for model in (cached, plain):
            model.train()  # CAD's BatchNorm in training mode
            batch = model.data_preprocessor(copy.deepcopy(data), True)
            losses = model.loss(batch['inputs'], batch['data_samples'])
            loss, _ = model.parse_losses(losses)
            results.append(loss)
        torch.testing.assert_close(
            results[0], results[1], rtol=1e-5, atol=1e-6)
        # and predictions (val/test) with the same embeddings
        data = batch_through(cfg, pipe, n=2)
        preds = []
        for model in (cached, plain):
            model.eval()
            batch = model.data_preprocessor(copy.deepcopy(data), False)
            with torch.no_grad():
                out = model.predict(batch['inputs'], batch['data_samples'])
            preds.append([o.seg_logits.data for o in out])
        for a, b in zip(*preds):  # at each image's own size
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cache_from_other_checkpoint_or_size_is_refused(cache, tmp_path):
    _, cache_dir, cfg = cache
    other = str(tmp_path / 'other_sam.pth')
    save_tiny_sam_checkpoint(other, seed=1)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.sam_checkpoint = other
    manifest = read_manifest(cache_dir)
    with pytest.raises(EmbeddingCacheError) as err:
        MODELS.build(ConfigDict(model_cfg))
    msg = str(err.value)
    assert manifest['sam_sha256'] in msg
    assert 'tools/cache_embeddings.py' in msg and cache_dir in msg
    import hashlib
    with open(other, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() in msg

    # another input size
    manifest['img_size'] = 256
    bad_dir = tmp_path / 'bad_cache'
    bad_dir.mkdir()
    (bad_dir / 'manifest.json').write_text(json.dumps(manifest))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.embedding_source.dir = str(bad_dir)
    with pytest.raises(EmbeddingCacheError, match='input size is 256'):
        MODELS.build(ConfigDict(model_cfg))
    # no cache at all
    model_cfg.backbone.embedding_source.dir = str(tmp_path / 'none')
    with pytest.raises(EmbeddingCacheError, match='cache_embeddings.py'):
        MODELS.build(ConfigDict(model_cfg))


def test_cache_misuse_is_explained(cache):
    _, cache_dir, cfg = cache
    # adapters inside the encoder cannot use cached embeddings
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.adapter = dict(type='LoRA')
    with pytest.raises(ValueError, match='cannot be computed once'):
        MODELS.build(ConfigDict(model_cfg))
    # random photometric changes cannot be cached
    with pytest.raises(EmbeddingCacheError, match='PhotoMetricDistortion'):
        check_pipeline([
            dict(type='LoadImageFromFile'),
            dict(type='PhotoMetricDistortion')
        ], ('LoadImageFromFile', 'Resize'))
    # a pipeline without LoadCachedEmbedding
    model = MODELS.build(ConfigDict(cfg.model))
    data = batch_through(
        cfg, [
            t for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] != 'LoadCachedEmbedding'
        ],
        n=1)
    batch = model.data_preprocessor(data, True)
    with pytest.raises(EmbeddingCacheError, match='LoadCachedEmbedding'):
        model.loss(batch['inputs'], batch['data_samples'])
    # an image the cache does not hold
    from mmseg.structures import SegDataSample
    sample = SegDataSample()
    sample.set_metainfo(dict(img_path='/elsewhere/new.jpg', flip=False))
    with pytest.raises(EmbeddingCacheError, match='new.jpg'):
        LoadCachedEmbedding(cache_dir)(dict(data_samples=sample))


@pytest.mark.slow
def test_cache_tool_and_training_cli(demo_data, tmp_path, train_tool):
    cache_dir = str(tmp_path / 'cache')
    cfg = cached_config(demo_data, str(tmp_path / 'work'), cache_dir)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='SafeCheckpointHook', by_epoch=False, interval=2)
    cfg.log_processor = dict(by_epoch=False)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    path = str(tmp_path / 'cad_cached.py')
    cfg.dump(path)
    proc = run_tool(
        ['tools/cache_embeddings.py', path, '--splits', 'train', 'val'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '80 embeddings written' in proc.stdout
    log = train_tool.run([path, '--work-dir', cfg.work_dir])
    assert 'BER:' in log
