"""The one PEFT checkpoint loader and the check at the model's load path:
mmseg's ``init_model`` (strict=False under the hood) loads a trainable-only
checkpoint exactly and refuses one of another model."""
import os.path as osp
import shutil

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


# ---------------------------------------- integrity on every load (issue 23)
def flip_bit(path, tensor):
    """Flip one bit of ``tensor``'s bytes where the file stores them (its
    zip CRC then fails)."""
    data = bytearray(open(path, 'rb').read())
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0
    data[at + len(raw) // 2] ^= 0x10
    open(path, 'wb').write(bytes(data))


@pytest.fixture
def corrupt(tiny_sam_file, saved, tmp_path):
    """(config, checkpoint) of the Conv-LoRA checkpoint with one bit
    flipped in its largest trainable weight."""
    path, _, kwargs = saved['convlora']
    bad = str(tmp_path / 'flipped.pth')
    open(bad, 'wb').write(open(path, 'rb').read())
    state = torch.load(path)['state_dict']
    flip_bit(bad, max(state.values(), key=lambda v: v.numel()))
    return config_file(tmp_path, tiny_sam_file[0], 'c', **kwargs), bad


@pytest.mark.parametrize('loader', [
    'init_model', 'MMSegInferencer', 'SAMSegInferencer', 'load_checkpoint',
    'load_peft_checkpoint'
])
def test_flipped_bit_is_refused_by_every_loader(corrupt, loader):
    from mmengine.runner import load_checkpoint
    from mmseg.apis import MMSegInferencer

    from mmseg_convlora.apis import SAMSegInferencer
    cfg, bad = corrupt
    load = dict(
        init_model=lambda: init_model(cfg, bad, device='cpu'),
        MMSegInferencer=lambda: MMSegInferencer(cfg, bad, device='cpu'),
        SAMSegInferencer=lambda: SAMSegInferencer(cfg, bad, device='cpu'),
        # what the runner calls for --resume and load_from
        load_checkpoint=lambda: load_checkpoint(
            MODELS.build(Config.fromfile(cfg).model), bad),
        load_peft_checkpoint=lambda: load_peft_checkpoint(
            MODELS.build(Config.fromfile(cfg).model), bad))[loader]
    with pytest.raises(
            CheckpointMismatchError,
            match='is corrupt: its '
            'trainable weights differ from the hash'):
        load()


def test_nan_weight_is_refused(tiny_sam_file, saved, tmp_path):
    path, _, kwargs = saved['convlora']
    ckpt = torch.load(path)
    key = sorted(ckpt['state_dict'])[0]
    ckpt['state_dict'][key].view(-1)[0] = float('nan')
    bad = str(tmp_path / 'nan.pth')
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(
            config_file(tmp_path, tiny_sam_file[0], 'c', **kwargs),
            bad,
            device='cpu')
    assert f'NaN/inf in 1 trainable weights ({key} (1 values))' in str(
        err.value)


def test_checkpoint_without_hash_loads_with_one_warning(
        tiny_sam_file, saved, tmp_path, capture_log):
    """Checkpoints of earlier versions carry no record."""
    from mmengine.logging import MMLogger

    import mmseg_convlora.models.utils.peft_checkpoint as pc
    path, state, kwargs = saved['convlora']
    ckpt = torch.load(path)
    ckpt['state_dict'] = dict(ckpt['state_dict'])  # no metadata
    log = capture_log(MMLogger.get_current_instance())
    pc._warned_unhashed = False
    for _ in range(2):
        model = build(tiny_sam_file[0], **kwargs)
        load_peft_checkpoint(model, ckpt)
        torch.testing.assert_close(model.state_dict(), state, rtol=0, atol=0)
    assert log.text().count('without a content hash') == 1


def other_sam_file(tiny_sam_file, tmp_path):
    """A tiny SAM of the same architecture with other weights."""
    other = str(tmp_path / 'other_sam.pth')
    state = torch.load(tiny_sam_file[0])
    torch.save({k: v + 0.01 for k, v in state.items()}, other)
    return other


def test_checkpoint_of_other_sam_weights_is_refused_naming_both(
        tiny_sam_file, saved, tmp_path, capture_log):
    from mmengine.logging import MMLogger
    path, _, kwargs = saved['convlora']
    other = other_sam_file(tiny_sam_file, tmp_path)
    cfg = config_file(tmp_path, other, 'other', **kwargs)
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(cfg, path, device='cpu')
    msg = str(err.value)
    assert 'other frozen SAM weights' in msg
    assert tiny_sam_file[0] in msg and other in msg
    assert 'model.check_frozen_weights=False' in msg
    # the override: loads, with a warning
    log = capture_log(MMLogger.get_current_instance())
    init_model(
        cfg,
        path,
        device='cpu',
        cfg_options=dict(model=dict(check_frozen_weights=False)))
    assert 'other frozen SAM weights' in log.text(30)


@pytest.mark.slow
@pytest.mark.parametrize('fault', ['flipped_bit', 'nan'])
def test_tools_test_refuses_a_damaged_checkpoint(trained_demo, demo_data,
                                                 tmp_path, fault):
    good = osp.join(trained_demo[0], 'best_BER_epoch_10.pth')
    bad = str(tmp_path / 'best.pth')
    ckpt = torch.load(good, weights_only=True)
    state = ckpt['state_dict']
    key = max(state, key=lambda k: state[k].numel())
    if fault == 'nan':
        state[key].view(-1)[0] = float('nan')
        torch.save(ckpt, bad)
    else:
        shutil.copy(good, bad)
        flip_bit(bad, state[key])
    proc = run_tool([
        'tools/test.py', 'configs/demo/tiny_shadow.py', bad, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options'
    ] + demo_cfg_options(demo_data))
    assert proc.returncode != 0
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith('error: ') and repr(bad) in error, error
    assert ('fails its CRC check' if fault == 'flipped_bit' else
            f'NaN/inf in 1 trainable weights ({key}') in error
    assert 'BER:' not in proc.stdout
