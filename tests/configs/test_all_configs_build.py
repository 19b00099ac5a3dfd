"""Every config under configs/ builds its model, datasets and evaluator.

A config that is added and cannot be built fails here. Models are built on
the meta device (shapes only), datasets on a tiny fake copy of the layout
the config reads. Configs with several named test sets (a list
``test_dataloader``) must use ``MultiDatasetTestLoop``, and the validation
metric that picks the best checkpoint must be one the val evaluator
reports.
"""
import copy
import glob
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from mmseg_convlora.models.segmentors.sam_segmentor import takes_checkpoint
from helpers import REPO

CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if f'{os.sep}_base_{os.sep}' not in p)

MULTI_LOOPS = {
    'test_dataloader': ('test_cfg', 'MultiDatasetTestLoop'),
    'val_dataloader': ('val_cfg', 'MultiDatasetValLoop')
}


def config_id(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


def fake_layout(dataset_cfg, root):
    """Write one image and mask where the dataset config looks."""
    prefix = dataset_cfg.get('data_prefix') or {}
    if dataset_cfg['type'] == 'Trans10KDataset' and not prefix:
        mask_dir = 'masks' if dataset_cfg['version'] == 'v1' else 'masks_12'
        prefix = dict(
            img_path=osp.join(dataset_cfg['split'], 'images'),
            seg_map_path=osp.join(dataset_cfg['split'], mask_dir))
        dataset_cfg.setdefault('seg_map_suffix', '_mask.png')
    img_dir = osp.join(root, prefix.get('img_path', ''))
    seg_dir = osp.join(root, prefix.get('seg_map_path', ''))
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(seg_dir, exist_ok=True)
    # the dataset class's own suffix defaults (e.g. .tiff images and .tif
    # masks for Massachusetts Roads), unless the config sets them
    default = DATASETS.get(dataset_cfg['type'])
    img_suffix = dataset_cfg.get('img_suffix',
                                 _default_arg(default, 'img_suffix', '.jpg'))
    if not isinstance(img_suffix, str):
        img_suffix = img_suffix[0]
    seg_suffix = dataset_cfg.get(
        'seg_map_suffix', _default_arg(default, 'seg_map_suffix', '.png'))
    assert cv2.imwrite(
        osp.join(img_dir, 'a' + img_suffix), np.zeros((8, 8, 3), np.uint8))
    assert cv2.imwrite(
        osp.join(seg_dir, 'a' + seg_suffix), np.zeros((8, 8), np.uint8))
    if dataset_cfg.get('ann_file'):  # a split file (PASCAL VOC)
        ann_file = osp.join(root, dataset_cfg['ann_file'])
        os.makedirs(osp.dirname(ann_file), exist_ok=True)
        with open(ann_file, 'w') as f:
            f.write('a\n')


def _default_arg(cls, name, fallback):
    import inspect
    param = inspect.signature(cls.__init__).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default


def loader_cfgs(cfg, key):
    """The dataloader configs of ``cfg[key]`` (with its ``extra_sets``,
    several named test sets)."""
    loader = cfg[key]
    return [loader] + list(loader.get('extra_sets', []))


def dataset_cfgs(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for loader in loader_cfgs(cfg, key):
            ds = loader['dataset']
            if ds.get('type') == 'ConcatDataset':
                yield from ds['datasets']
            else:
                yield ds


def evaluator_cfgs(cfg):
    for key in ('val', 'test'):
        yield cfg[f'{key}_evaluator']
        for loader in loader_cfgs(cfg, f'{key}_dataloader'):
            if 'evaluator' in loader:
                yield loader['evaluator']


def fake_prediction(num_classes):
    """One 8x8 prediction + GT as the segmentor returns them."""
    rng = np.random.default_rng(0)
    sample = SegDataSample()
    gt = rng.integers(0, max(num_classes, 2), (1, 8, 8))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt))
    if num_classes <= 2:  # binary head: foreground probability
        logits = torch.rand(1, 8, 8, dtype=torch.float64).float()
        pred = (logits > 0.5).long()
    else:
        logits = torch.rand(num_classes, 8, 8)
        pred = logits.argmax(0, keepdim=True)
    sample.seg_logits = PixelData(data=logits)
    sample.pred_sem_seg = PixelData(data=pred)
    sample.set_metainfo(dict(ori_shape=(8, 8), img_shape=(8, 8)))
    return sample.to_dict()


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds(path, tmp_path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.copy()
    model_cfg['sam_checkpoint'] = None
    for part in ('backbone', 'decode_head'):
        if takes_checkpoint(model_cfg[part]):
            model_cfg[part] = dict(model_cfg[part], checkpoint=None)
    device = 'meta'
    if model_cfg.backbone.type == 'PEFTBackbone':
        model_cfg.backbone.backbone.init_cfg = None  # no pretrained file
        device = 'cpu'  # mmseg's backbones call .item() while built
    with torch.device(device):
        model = MODELS.build(model_cfg)
    assert model.parameter_counts()['trainable'] > 0
    datasets = []
    for i, ds in enumerate(dataset_cfgs(cfg)):
        ds = ds.copy()
        ds['data_root'] = str(tmp_path / f'data{i}')
        # serialising calls gc.collect() (0.2 s a dataset); not under test
        ds['serialize_data'] = False
        fake_layout(ds, ds['data_root'])
        dataset = DATASETS.build(ds)
        assert len(dataset) >= 1
        datasets.append(dataset)
    # as the runner builds them (a dict with a ``metrics`` key, say, is
    # read as a custom Evaluator, not as a metric)
    evaluators = [
        Runner.build_evaluator(None, copy.deepcopy(ev))
        for ev in evaluator_cfgs(cfg)
    ]
    assert all(e.metrics for e in evaluators)

    # several named test (or val) sets need the multi-dataset loop
    for key, (loop_key, loop_type) in MULTI_LOOPS.items():
        if 'extra_sets' in cfg[key]:
            assert cfg[loop_key]['type'] == loop_type, (
                f'{key} has extra_sets but {loop_key} is '
                f'{cfg[loop_key]}; set {loop_key}=dict(type={loop_type!r})')
            names = [loader.get('name') for loader in loader_cfgs(cfg, key)]
            assert all(names) and len(set(names)) == len(names), names

    # the metric that picks the best checkpoint is one validation reports
    ckpt = cfg.default_hooks.checkpoint
    save_best = ckpt.get('save_best')
    if save_best and save_best != 'auto':
        evaluator = evaluators[0]
        evaluator.dataset_meta = datasets[0].metainfo
        head = cfg.model.decode_head
        num_classes = head.get('out_channels', head.get('num_classes', 1))
        evaluator.process([fake_prediction(num_classes)])
        keys = evaluator.evaluate(1)
        assert save_best in keys, (save_best, sorted(keys))
        if save_best.split('/')[-1] in ('BER', 'MAE', 'mBER') or \
                save_best.split('/')[-1].endswith('_BER'):
            assert ckpt.get('rule') == 'less', ckpt
        else:
            assert ckpt.get('rule', 'greater') == 'greater', ckpt


# loaders that refuse label values that are no class id, naming the file
_CHECKED_LOADERS = ('LoadBinaryAnnotations', 'LoadTrans10KAnnotations')


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_every_pipeline_checks_its_labels(path):
    """Labels outside [0, K) (other than 255) stop training and evaluation
    with the file name: each pipeline with annotations decodes them with a
    checking loader, or checks them with CheckSegLabels(num_classes=K)."""
    cfg = Config.fromfile(path)
    num_classes = cfg.model.decode_head.num_classes
    for ds in dataset_cfgs(cfg):
        steps = [t['type'] for t in ds['pipeline']]
        if any(s in _CHECKED_LOADERS for s in steps):
            continue
        assert 'LoadAnnotations' in steps, (path, steps)
        checks = [t for t in ds['pipeline'] if t['type'] == 'CheckSegLabels']
        assert checks, f'{config_id(path)}: {steps} lacks CheckSegLabels'
        assert steps.index('CheckSegLabels') > steps.index('LoadAnnotations')
        assert checks[0]['num_classes'] == num_classes


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_training_workers_allow_an_exact_resume(path):
    """ExactResumeHook repeats the augmentations exactly only with workers
    created afresh each epoch (persistent workers restart them)."""
    loader = Config.fromfile(path).train_dataloader
    assert loader.get(
        'num_workers',
        0) == 0 or not loader.get('persistent_workers', False), config_id(path)
