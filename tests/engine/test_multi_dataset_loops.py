"""MultiDatasetTestLoop / MultiDatasetValLoop: several named test sets, one
run, every metric reported per set."""
import glob
import json
import os.path as osp
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_convlora.engine.runner import (MultiDatasetTestLoop,
                                          MultiDatasetValLoop, named_sets)
from helpers import REPO, demo_config, run_tool

TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=False),
    dict(type='LoadBinaryAnnotations'),
    dict(type='PackSegInputs'),
]


def loader(name, data_root, split, num=None, **extra):
    dataset_extra = dict(indices=num) if num else {}
    return dict(
        name=name,
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='BinarySegDataset',
            data_root=data_root,
            data_prefix=dict(
                img_path=f'{split}/images', seg_map_path=f'{split}/masks'),
            pipeline=TEST_PIPELINE,
            **dataset_extra),
        **extra)


@pytest.fixture(scope='module')
def demo_checkpoint(demo_data, tmp_path_factory):
    """Weights of the demo model (untrained decoder: the test is about the
    loop, not the scores)."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # module fixtures run before conftest's
    cfg = demo_config(demo_data, str(tmp_path_factory.mktemp('w')))
    model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'demo.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.mark.slow
def test_tools_test_reports_each_test_set(demo_data, demo_checkpoint,
                                          tmp_path):
    # a user's config: the demo model on two named test sets, the second
    # with its own evaluator
    cfg_path = tmp_path / 'two_sets.py'
    sets = [
        loader('shadowA', demo_data, 'val'),
        loader(
            'shadowB',
            demo_data,
            'train',
            num=12,
            evaluator=dict(type='SODMetric', beta2=0.3)),
    ]
    sam = osp.join(demo_data, 'tiny_sam.pth')
    cfg_path.write_text(
        f"_base_ = [{osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')!r}]\n"
        f'model = dict(sam_checkpoint={sam!r})\n'
        f'test_dataloader = {sets!r}\n'
        "test_evaluator = dict(type='BERMetric')\n"
        "test_cfg = dict(type='MultiDatasetTestLoop')\n")
    work, out = str(tmp_path / 'work'), str(tmp_path / 'preds')
    proc = run_tool([
        'tools/test.py',
        str(cfg_path), demo_checkpoint, '--work-dir', work, '--out', out
    ])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "test set 'shadowA' (1/2, 8 images)" in log
    assert "test set 'shadowB' (2/2, 12 images)" in log
    # per-class BER keys follow the dataset's classes (BinarySegDataset:
    # background / foreground)
    for key in ('shadowA/BER', 'shadowA/foreground_BER', 'shadowB/Sm',
                'shadowB/meanEm', 'shadowB/wFm', 'shadowB/MAE'):
        assert f'{key}:' in log, key
    assert 'shadowA/Sm' not in log and 'shadowB/BER' not in log
    # the per-set table
    assert '| test set | BER' in log
    # all metrics in the json mmengine writes
    jsons = glob.glob(osp.join(work, '*', '*.json'))
    metrics = json.load(open(jsons[0]))
    assert {'shadowA/BER', 'shadowB/Sm'} <= set(metrics)
    assert 0 <= metrics['shadowA/BER'] <= 100
    assert 0 <= metrics['shadowB/Sm'] <= 1
    # predictions of each set in their own folder
    assert len(glob.glob(osp.join(out, 'shadowA', '*.png'))) == 8
    assert len(glob.glob(osp.join(out, 'shadowB', '*.png'))) == 12


@pytest.mark.slow
def test_val_loop_picks_best_checkpoint_by_prefixed_key(demo_data, tmp_path):
    cfg = demo_config(demo_data, str(tmp_path / 'work'))
    cfg.model.backbone.adapter = None
    cfg.train_dataloader.dataset.indices = 4  # one iteration
    cfg.val_dataloader = [
        loader('a', demo_data, 'val'),
        loader('b', demo_data, 'val')
    ]
    cfg.val_cfg = dict(type='MultiDatasetValLoop')
    cfg.train_cfg = dict(
        type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='SafeCheckpointHook', interval=1, save_best='a/BER', rule='less')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert isinstance(runner.val_loop, MultiDatasetValLoop)
    assert runner.val_loop.current_name is None  # reset after the run
    metrics = runner.val_loop.run()
    assert set(metrics) == {
        'a/BER', 'a/foreground_BER', 'a/background_BER', 'b/BER',
        'b/foreground_BER', 'b/background_BER'
    }
    assert metrics['a/BER'] == pytest.approx(metrics['b/BER'])
    # CheckpointHook picks the best by the prefixed key ('/' -> '_')
    assert glob.glob(osp.join(cfg.work_dir, 'best_a_BER_epoch_1.pth'))


class FakeRunner:
    """What the loops use of a Runner, without building one."""
    seed = 0
    _randomness_cfg = dict()
    visualizer = types.SimpleNamespace(dataset_meta=None)

    def build_dataloader(self, cfg, **kwargs):
        assert 'name' not in cfg and 'evaluator' not in cfg
        return types.SimpleNamespace(
            dataset=types.SimpleNamespace(metainfo=dict(classes=('a', 'b'))),
            cfg=cfg)

    def build_evaluator(self, cfg):
        return types.SimpleNamespace(cfg=cfg, dataset_meta=None)


def test_loop_builds_one_evaluator_per_set():
    loop = MultiDatasetTestLoop(FakeRunner(), [
        dict(name='x', batch_size=1),
        dict(name='y', batch_size=2, evaluator=dict(type='SODMetric'))
    ], dict(type='BERMetric'))
    assert loop.names == ['x', 'y']
    assert [e.cfg['type']
            for e in loop.evaluators] == ['BERMetric', 'SODMetric']
    assert loop.evaluators[0].dataset_meta == dict(classes=('a', 'b'))
    assert loop.dataloader is loop.dataloaders[0]
    renamed = MultiDatasetTestLoop(
        FakeRunner(), [dict(batch_size=1)],
        dict(type='BERMetric'),
        names=['z'])
    assert renamed.names == ['z']


@pytest.mark.parametrize('loaders, names, match', [
    ([dict(batch_size=1)], None, 'has no name'),
    ([dict(name='a'), dict(name='a')], None, 'used twice'),
    ([dict(name='a/b')], None, "must not contain '/'"),
    ([], None, 'empty list'),
    ([dict(name='a')], ['a', 'b'], '2 names for 1 dataloaders'),
])
def test_loop_refuses_bad_sets(loaders, names, match):
    with pytest.raises(ValueError, match=match):
        MultiDatasetTestLoop(
            FakeRunner(), loaders, dict(type='BERMetric'), names=names)


def test_polyp_config_has_five_named_test_sets():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'convlora', 'polyp.py'))
    sets = named_sets(cfg.test_dataloader)
    assert [name for name, _ in sets] == [
        'Kvasir', 'CVC-ClinicDB', 'CVC-ColonDB', 'ETIS-LaribPolypDB', 'CVC-300'
    ]
    assert sets[0][1] is cfg.test_dataloader  # uncopied: overrides reach it
    assert sets[4][1]['dataset']['data_prefix']['img_path'].endswith(
        'CVC-300/images')
    assert cfg.test_cfg.type == 'MultiDatasetTestLoop'
    assert cfg.test_evaluator == dict(type='SODMetric', beta2=0.3)


@pytest.mark.parametrize('loaders, names', [
    (dict(batch_size=1), ['test']),
    ([dict(), dict(name='b')], ['test0', 'b']),
    (dict(name='a', extra_sets=[dict(), dict(name='c')]), ['a', 'test1', 'c']),
])
def test_named_sets_names_unnamed_sets(loaders, names):
    assert [name for name, _ in named_sets(loaders)] == names
    assert [name for name, _ in named_sets(loaders, default=None)
            ] == [n if n in ('a', 'b', 'c') else None for n in names]
