"""Typos in a config or in --cfg-options stop tools/train.py and
tools/test.py at start, in one line with a did-you-mean."""
import os.path as osp

import pytest
from mmengine.config import Config

from tools.config_checks import (ConfigError, check_config, check_loops,
                                 check_save_best, did_you_mean,
                                 validation_keys)
from tools.config_overrides import apply_overrides
from helpers import REPO, load_tool

TEMPLATE = 'configs/custom/binary_dataset.py'
MOBILE_TEMPLATE = 'configs/custom/binary_dataset_mobile-sam.py'


def config(path):
    return Config.fromfile(osp.join(REPO, path))


@pytest.fixture(scope='module')
def train_main():
    return load_tool('train.py').main


def exit_message(main, argv, tmp_path):
    """The one-line message ``main`` exits with, before any run starts."""
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as exc:
        main(argv + ['--work-dir', str(work)])
    assert not work.exists()  # stopped before the Runner
    message = str(exc.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_did_you_mean_ignores_case():
    assert did_you_mean('IOU', ['IoU', 'Dice']) == " (did you mean 'IoU'?)"
    assert did_you_mean('data_rot', ['data_root']) == \
        " (did you mean 'data_root'?)"
    assert did_you_mean('zzz', ['IoU']) == ''


def test_unknown_override_key_is_refused(train_main, tmp_path):
    cfg = config(TEMPLATE)
    with pytest.raises(
            ConfigError,
            match="no key 'data_rot' \\(did you "
            "mean 'data_root'\\?\\)"):
        apply_overrides(cfg, {'data_rot': '/data/mine'})
    message = exit_message(
        train_main,
        [osp.join(REPO, TEMPLATE), '--cfg-options', 'data_rot=/data/mine'],
        tmp_path)
    assert "did you mean 'data_root'?" in message


def test_override_of_a_variable_is_refused_naming_where_it_went():
    cfg = config(MOBILE_TEMPLATE)
    with pytest.raises(ConfigError) as exc:
        apply_overrides(cfg, {'sam_checkpoint': '/weights/mobile_sam.pt'})
    message = str(exc.value)
    assert "'sam_checkpoint' is a variable" in message
    assert 'e.g. model.sam_checkpoint.' in message
    # the Runner's own keys and the ones the tools carry through pass
    apply_overrides(
        cfg, {
            'model.sam_checkpoint': '/weights/mobile_sam.pt',
            'randomness.seed': 0,
            'work_dir': '/tmp/w',
            'data_root': '/data/mine',
            'max_epochs': 3
        })
    assert cfg.model.sam_checkpoint == '/weights/mobile_sam.pt'


def test_split_folders_override_reaches_the_dataloader(tmp_path):
    text = open(osp.join(REPO, TEMPLATE)).read()
    text = text.replace("'../_base_/", f"'{REPO}/configs/_base_/")
    text = text.replace("test='val')", "test='test')")
    path = tmp_path / 'mine.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    assert cfg.test_dataloader.dataset.data_prefix.img_path == 'test/images'
    notes = apply_overrides(cfg, {'split_folders.test': 'val'})
    assert cfg.test_dataloader.dataset.data_prefix == dict(
        img_path='val/images', seg_map_path='val/masks')
    assert cfg.train_dataloader.dataset.data_prefix.img_path == \
        'train/images'
    assert cfg.split_folders.test == 'val'
    assert notes == ["the test dataloader reads 'val'"]
    with pytest.raises(ConfigError, match="did you mean 'test'"):
        apply_overrides(cfg, {'split_folders.tset': 'val'})


def test_split_folders_override_without_split_folders_is_refused():
    with pytest.raises(ConfigError, match="no key 'split_folders'"):
        apply_overrides(
            config('configs/demo/tiny_shadow.py'),
            {'split_folders.test': 'val'})


def test_unknown_loop_argument_is_refused(train_main, tmp_path):
    cfg = config(TEMPLATE)
    cfg.merge_from_dict({'train_cfg.max_epoch': 1})
    with pytest.raises(ConfigError) as exc:
        check_loops(cfg)
    assert str(exc.value).startswith(
        "train_cfg.max_epoch: EpochBasedTrainLoop has no argument "
        "'max_epoch' (did you mean 'max_epochs'?)")
    message = exit_message(
        train_main,
        [osp.join(REPO, TEMPLATE), '--cfg-options', 'train_cfg.max_epoch=1'],
        tmp_path)
    assert "did you mean 'max_epochs'?" in message
    cfg = config(TEMPLATE)
    cfg.val_cfg.fp61 = True
    with pytest.raises(
            ConfigError,
            match="ValLoop has no argument 'fp61' "
            "\\(did you mean 'fp16'\\?\\)"):
        check_loops(cfg)
    cfg = config(TEMPLATE)
    cfg.train_cfg.type = 'EpochBasedTrainLop'
    with pytest.raises(
            ConfigError, match="did you mean "
            "'EpochBasedTrainLoop'"):
        check_loops(cfg)


def test_save_best_not_reported_by_validation_is_refused(train_main, tmp_path):
    cfg = config(TEMPLATE)
    cfg.default_hooks.checkpoint.save_best = 'IOU'
    with pytest.raises(ConfigError) as exc:
        check_save_best(cfg)
    assert str(exc.value) == (
        "default_hooks.checkpoint.save_best='IOU' is not a validation "
        "metric (did you mean 'IoU'?); the val_evaluator reports Acc, Dice, "
        'IoU, Jaccard, threshold_Jaccard.')
    message = exit_message(train_main, [
        osp.join(REPO, TEMPLATE), '--cfg-options',
        'default_hooks.checkpoint.save_best=IOU'
    ], tmp_path)
    assert "did you mean 'IoU'?" in message


def test_validation_keys_follow_the_evaluator_and_the_classes():
    # BER per class is named after the dataset's classes
    assert validation_keys(config('configs/demo/tiny_shadow.py')) == {
        'BER', 'shadow_BER', 'non_shadow_BER'
    }
    cfg = config('configs/convlora/kvasir-cvc_mobile-sam.py')
    assert validation_keys(cfg) == {'Sm', 'MAE'}
    cfg.val_evaluator = [
        dict(type='SODMetric', sod_metrics=['Sm'], prefix='sod'),
        dict(type='BinarySegMetric')
    ]
    assert validation_keys(cfg) == {
        'sod/Sm', 'IoU', 'Dice', 'Acc', 'Jaccard', 'threshold_Jaccard'
    }
    # mmseg's own metric on a multi-class dataset
    assert validation_keys(
        config(
            'configs/sam_multiclass/convlora_sam-vit-b_voc12-512x512.py')) == {
                'aAcc', 'mIoU', 'mAcc'
            }


def test_save_best_of_several_named_validation_sets():
    cfg = config('configs/convlora/polyp.py')
    test_sets = cfg.test_dataloader
    cfg.val_dataloader = test_sets
    cfg.val_cfg = dict(type='MultiDatasetValLoop')
    cfg.default_hooks.checkpoint.save_best = 'Kvasir/Sm'
    check_save_best(cfg)
    cfg.default_hooks.checkpoint.save_best = 'Kvasir/sm'
    with pytest.raises(ConfigError, match="did you mean 'Kvasir/Sm'"):
        check_save_best(cfg)


@pytest.mark.parametrize('path', [
    TEMPLATE, MOBILE_TEMPLATE, 'configs/demo/tiny_shadow.py',
    'configs/demo/tiny_multiclass.py', 'configs/convlora/polyp.py',
    'configs/cad/trans10k-v2.py', 'configs/lora/kvasir-cvc_mobile-sam.py',
    'configs/sam_upernet/convlora_sam-vit-b_upernet_ade20k-512x512.py',
    'configs/_base_/schedules/schedule_80k.py'
])
def test_shipped_configs_pass(path):
    cfg = config(path)
    check_config(cfg)
    if 'val_evaluator' in cfg:
        assert validation_keys(cfg)  # the dry call worked
