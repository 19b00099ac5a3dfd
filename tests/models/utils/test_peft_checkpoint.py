"""The one PEFT checkpoint loader and the check at the model's load path:
mmseg's ``init_model`` (strict=False under the hood) loads a trainable-only
checkpoint exactly and refuses one of another model."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.apis import init_model
from mmseg.registry import MODELS

from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from mmseg_convlora.models.utils import (CheckpointMismatchError,
                                         load_peft_checkpoint, peft_signature,
                                         trainable_state_keys)
from helpers import demo_cfg_options, run_tool, tiny_model_cfg

MULTICLASS = dict(
    num_classes=3,
    out_channels=3,
    num_queries=4,
    threshold=None,
    loss=dict(type='MaskClassificationLoss', num_classes=3))


class _Runner:

    def __init__(self, model):
        self.model = model
        self.cfg = dict(resume=False)


def build(sam_file, adapter=None, **kwargs):
    init_default_scope('mmseg')  # also from the module-scoped fixture
    return MODELS.build(tiny_model_cfg(sam_file, adapter=adapter, **kwargs))


def save_trained(model, path, seed=1):
    """Perturb the trainable weights (as training would) and save them as
    training does; return the full state dict the model then has."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen))
    ckpt = dict(state_dict=model.state_dict(), meta={})
    TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
    torch.save(ckpt, path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def config_file(tmp_path, sam_file, name, adapter=None, **kwargs):
    cfg = Config(
        dict(
            model=tiny_model_cfg(sam_file, adapter=adapter, **kwargs),
            default_scope='mmseg',
            custom_imports=dict(imports=['mmseg_convlora'])))
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def saved(tiny_sam_file, tmp_path_factory):
    """Trainable-only checkpoints of three models and their full states."""
    root = tmp_path_factory.mktemp('peft_ckpts')
    out = {}
    for name, kwargs in (('convlora', dict(adapter=dict(type='ConvLoRA'))),
                         ('lora', dict(adapter=dict(type='LoRA'))),
                         ('multiclass', dict(MULTICLASS))):
        path = str(root / f'{name}.pth')
        state = save_trained(build(tiny_sam_file[0], **kwargs), path)
        out[name] = (path, state, kwargs)
    return out


@pytest.mark.parametrize('name', ['convlora', 'multiclass'])
def test_init_model_loads_trainable_only_checkpoint_exactly(
        tiny_sam_file, saved, tmp_path, name, capsys):
    path, state, kwargs = saved[name]
    cfg = config_file(tmp_path, tiny_sam_file[0], name, **kwargs)
    model = init_model(cfg, path, device='cpu')
    got = model.state_dict()
    assert set(got) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
    # nothing is reported missing for a correct checkpoint
    assert 'missing keys' not in capsys.readouterr().err


def test_init_model_refuses_lora_checkpoint_for_conv_lora(
        tiny_sam_file, saved, tmp_path):
    cfg = config_file(
        tmp_path, tiny_sam_file[0], 'c', adapter=dict(type='ConvLoRA'))
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(cfg, saved['lora'][0], device='cpu')
    msg = str(err.value)
    assert "adapters ['ConvLoRA']" in msg and 'trainable weights are ' \
        'missing' in msg and 'experts' in msg
    assert 'config the checkpoint was trained with' in msg


def test_init_model_refuses_three_class_checkpoint_for_binary(
        tiny_sam_file, saved, tmp_path):
    cfg = config_file(tmp_path, tiny_sam_file[0], 'b')
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(cfg, saved['multiclass'][0], device='cpu')
    msg = str(err.value)
    # the config's own value: a binary head has num_classes=2
    assert 'num_classes 2' in msg
    assert 'decode_head.cls_embed.weight' in msg
    assert 'decode_head.query_tokens: checkpoint (4, 32), model (1, 32)' \
        in msg


@pytest.mark.parametrize('trained_with', [True, False])
def test_other_token_sequence_names_the_setting(tiny_sam_file, tmp_path,
                                                trained_with):
    path = str(tmp_path / 'tokens.pth')
    save_trained(
        build(tiny_sam_file[0], keep_sam_multimask_tokens=trained_with), path)
    cfg = config_file(
        tmp_path,
        tiny_sam_file[0],
        'k',
        keep_sam_multimask_tokens=not trained_with)
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(cfg, path, device='cpu')
    assert f'keep_sam_multimask_tokens={trained_with} to load it' in \
        str(err.value)


def test_sam_weights_file_as_checkpoint_is_refused(tiny_sam_file, tmp_path):
    cfg = config_file(
        tmp_path, tiny_sam_file[0], 'd', adapter=dict(type='ConvLoRA'))
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(cfg, tiny_sam_file[0], device='cpu')
    msg = str(err.value)
    assert 'holds none of the' in msg and 'model.sam_checkpoint' in msg


def test_signature_mismatch_reports_config_values(tiny_sam_file, saved):
    model = build(tiny_sam_file[0])
    with pytest.raises(CheckpointMismatchError) as err:
        load_peft_checkpoint(model, saved['multiclass'][0])
    msg = str(err.value)
    assert 'num_classes: checkpoint 3, config 2' in msg
    assert 'out_channels: checkpoint 3, config 1' in msg
    assert saved['multiclass'][0] in msg


def test_old_signature_without_out_channels_still_loads(
        tiny_sam_file, tmp_path):
    model = build(tiny_sam_file[0], adapter=dict(type='LoRA'))
    state = save_trained(model, str(tmp_path / 'x.pth'))
    ckpt = torch.load(str(tmp_path / 'x.pth'))
    # written before out_channels was recorded: num_classes held it
    ckpt['meta']['peft'].pop('out_channels')
    ckpt['meta']['peft']['num_classes'] = 1
    fresh = build(tiny_sam_file[0], adapter=dict(type='LoRA'))
    load_peft_checkpoint(fresh, ckpt)
    torch.testing.assert_close(fresh.state_dict(), state, rtol=0, atol=0)
    ckpt['meta']['peft']['num_classes'] = 3
    with pytest.raises(
            CheckpointMismatchError,
            match='num_classes: checkpoint 3, config 2'):
        load_peft_checkpoint(fresh, ckpt)


def test_trainable_only_checkpoint_needs_the_sam_weights(tiny_sam_file, saved):
    model = build(None, adapter=dict(type='ConvLoRA'))
    with pytest.raises(
            CheckpointMismatchError,
            match='model.sam_checkpoint, which is not set'):
        load_peft_checkpoint(model, saved['convlora'][0])


def test_strict_load_state_dict_of_trainable_weights_only(
        tiny_sam_file, saved):
    path, state, kwargs = saved['convlora']
    model = build(tiny_sam_file[0], **kwargs)
    trainable_only = torch.load(path)['state_dict']
    assert set(trainable_only) == trainable_state_keys(model)
    model.load_state_dict(trainable_only, strict=True)
    torch.testing.assert_close(model.state_dict(), state, rtol=0, atol=0)


def test_full_state_dict_without_sam_file_loads(tiny_sam_file, saved):
    """An exported (full) state dict needs no SAM file."""
    _, state, kwargs = saved['convlora']
    model = build(None, **kwargs)
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(model.state_dict(), state, rtol=0, atol=0)


def test_signature_records_config_values(tiny_sam_file):
    sig = peft_signature(build(tiny_sam_file[0], **MULTICLASS))
    assert sig == dict(
        arch=sig['arch'],
        adapters=['none (decoder-only)'],
        num_classes=3,
        out_channels=3)
    sig = peft_signature(build(tiny_sam_file[0]))
    assert (sig['num_classes'], sig['out_channels']) == (2, 1)


def test_missing_checkpoint_file_is_named(tiny_sam_file, tmp_path):
    path = osp.join(str(tmp_path), 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_peft_checkpoint(build(tiny_sam_file[0]), path)


@pytest.mark.slow
def test_tools_test_refuses_the_sam_weights_file(demo_data, tmp_path):
    sam_file = osp.join(demo_data, 'tiny_sam.pth')
    proc = run_tool([
        'tools/test.py', 'configs/demo/tiny_shadow.py', sam_file, '--work-dir',
        str(tmp_path), '--cfg-options'
    ] + demo_cfg_options(demo_data))
    assert proc.returncode != 0
    assert f'The checkpoint {sam_file!r} holds none of the' in proc.stderr
    assert 'model.sam_checkpoint' in proc.stderr
    assert 'BER:' not in proc.stdout  # no metrics of an unloaded model
