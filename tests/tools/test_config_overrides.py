"""data_root / max_epochs that reach every place, --method, the warnings
for child configs, and the custom-dataset template."""
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from tools.config_overrides import (METHOD_ADAPTERS, apply_overrides,
                                    config_warnings, dataset_cfgs)
from helpers import REPO


def config(path):
    return Config.fromfile(osp.join(REPO, path))


def test_cfg_options_data_root_reaches_every_dataset():
    cfg = config('configs/convlora/polyp.py')
    assert len(list(dataset_cfgs(cfg))) == 7  # train, val, 5 test sets
    notes = apply_overrides(cfg, {'data_root': '/data/mine'})
    roots = {d['data_root'] for d in dataset_cfgs(cfg)}
    assert roots == {'/data/mine'} and cfg.data_root == '/data/mine'
    assert notes == ["data_root='/data/mine' for all 7 datasets"]
    assert config_warnings(cfg) == []


def test_child_config_data_root_is_reported(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{REPO}/configs/convlora/sbu.py']\n"
                     "data_root = 'data/mine'\n")
    cfg = Config.fromfile(str(child))
    # what mmengine does: the base's dataloaders keep the base's root
    assert {d['data_root'] for d in dataset_cfgs(cfg)} == {'data/SBU'}
    (warning, ) = config_warnings(cfg)
    assert "data_root='data/mine'" in warning and "['data/SBU']" in warning
    assert '--cfg-options data_root=data/mine' in warning


def test_max_epochs_moves_the_lr_schedule():
    cfg = config('configs/convlora/sbu.py')
    assert cfg.param_scheduler[0]['end'] == 10
    apply_overrides(cfg, {'train_cfg.max_epochs': 3})
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.param_scheduler[0]['end'] == 3
    assert config_warnings(cfg) == []
    # a plain merge (what mmengine does) leaves the schedule behind
    cfg = config('configs/convlora/sbu.py')
    cfg.merge_from_dict({'train_cfg.max_epochs': 3})
    (warning, ) = config_warnings(cfg)
    assert 'Training runs 3 epochs but the LR schedule (PolyLR) ends at ' \
        'epoch 10' in warning


@pytest.mark.parametrize('method', sorted(METHOD_ADAPTERS))
def test_method_presets_are_the_method_configs(method):
    shipped = config(f'configs/{method}/sbu.py').model.backbone.get('adapter')
    cfg = config('configs/convlora/sbu.py')
    apply_overrides(cfg, method=method)
    adapter = cfg.model.backbone.adapter
    if method == 'cad':  # half the model's input, here 1024 as shipped
        assert adapter == dict(type='CAD', input_size=512)
    if shipped is None:
        assert adapter is None
    else:
        assert Config(dict(a=adapter)).a == Config(dict(a=shipped)).a


def test_method_on_mobile_sam_targets_tiny_vit_qkv():
    cfg = config('configs/decoder_only/kvasir-cvc_mobile-sam.py')
    apply_overrides(cfg, method='convlora')
    assert cfg.model.backbone.adapter == config(
        'configs/convlora/kvasir-cvc_mobile-sam.py').model.backbone.adapter


def test_method_cad_input_is_half_the_model_input():
    cfg = config('configs/demo/tiny_shadow.py')
    apply_overrides(cfg, method='cad')
    assert cfg.model.backbone.adapter == dict(type='CAD', input_size=64)


def test_method_cad_brings_and_takes_cad_input_steps():
    cfg = config('configs/lora/sbu.py')
    apply_overrides(cfg, method='cad')
    cad = config('configs/cad/sbu.py')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.pipeline == cad[key].dataset.pipeline
    apply_overrides(cad, method='lora')
    lora = config('configs/lora/sbu.py')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cad[key].dataset.pipeline == lora[key].dataset.pipeline


def test_template_reads_the_data_block(tmp_path):
    root = tmp_path / 'my_data'
    for split in ('train', 'val'):
        for i in range(2):
            (root / split / 'images').mkdir(parents=True, exist_ok=True)
            (root / split / 'masks').mkdir(parents=True, exist_ok=True)
            cv2.imwrite(
                str(root / split / 'images' / f'{split}{i}.png'),
                np.zeros((8, 8, 3), np.uint8))
            cv2.imwrite(
                str(root / split / 'masks' / f'{split}{i}_m.png'),
                np.zeros((8, 8), np.uint8))
    mine = tmp_path / 'my_dataset.py'
    text = open(osp.join(REPO, 'configs/custom/binary_dataset.py')).read()
    text = text.replace("'../_base_/", f"'{REPO}/configs/_base_/")
    text = text.replace("data_root = 'data/my_dataset'",
                        f"data_root = '{root}'")
    text = text.replace("seg_map_suffix = '.png'", 'seg_map_suffix = '
                        "'_m.png'")
    mine.write_text(text)
    cfg = Config.fromfile(str(mine))
    assert config_warnings(cfg) == []
    for key, split in (('train_dataloader', 'train'),
                       ('val_dataloader', 'val'), ('test_dataloader', 'val')):
        dataset = DATASETS.build(cfg[key].dataset)
        names = sorted(
            osp.basename(dataset.get_data_info(i)['img_path'])
            for i in range(len(dataset)))
        assert names == [f'{split}0.png', f'{split}1.png']
    assert cfg.train_dataloader.sampler.shuffle
    assert not cfg.val_dataloader.sampler.shuffle
    shutil.rmtree(root)
