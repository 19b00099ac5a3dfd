"""tools/analysis/expert_usage.py on the tiny Conv-LoRA demo model."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

import mmseg_convlora  # noqa: F401
from mmseg_convlora.engine.hooks.trainable_checkpoint_hook import (
    peft_signature, trainable_state_keys)
from helpers import REPO, demo_cfg_options, demo_config, load_tool

CONFIG = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')


@pytest.fixture(scope='module')
def demo_ckpt(demo_data, tmp_path_factory):
    """A trainable-only checkpoint of the demo model with random gates (so
    that routing is not all ties), saved as tools/train.py saves it."""
    init_default_scope('mmseg')
    cfg = demo_config(demo_data, str(tmp_path_factory.mktemp('work')))
    model = MODELS.build(cfg.model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(('w_gate', 'lora_B')):
                p.copy_(torch.randn(p.shape, generator=g))
    keep = trainable_state_keys(model)
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    path = str(tmp_path_factory.mktemp('ckpt') / 'demo.pth')
    torch.save(
        dict(state_dict=state, meta=dict(peft=peft_signature(model))), path)
    return path, model


def test_expert_usage_png_and_table(demo_data, demo_ckpt, tmp_path, capsys):
    path, model = demo_ckpt
    tool = load_tool('analysis', 'expert_usage.py')
    out = str(tmp_path / 'usage')
    counts = tool.main(
        [CONFIG, path, '--out', out, '--device', 'cpu', '--cfg-options'] +
        demo_cfg_options(demo_data))
    printed = capsys.readouterr().out
    assert 'blocks.0.attn.qkv' in printed and 'overall' in printed
    assert 's=8' in printed
    with open(osp.join(out, 'expert_usage.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open(osp.join(out, 'expert_usage.json')) as f:
        saved = json.load(f)
    assert saved['num_images'] == 8
    layers = saved['layers']
    # 128 px -> 8x8 grid: windowed block 0 routes 4 windows per image,
    # global block 1 routes each image once
    assert layers['blocks.0.attn.qkv']['attn'] == 'window'
    assert sum(layers['blocks.0.attn.qkv']['counts']) == 8 * 4
    assert layers['blocks.1.attn.qkv']['attn'] == 'global'
    assert sum(layers['blocks.1.attn.qkv']['counts']) == 8
    assert saved['overall'] == [
        a + b for a, b in zip(layers['blocks.0.attn.qkv']['counts'],
                              layers['blocks.1.attn.qkv']['counts'])
    ]
    assert len(saved['overall']) == 8
    assert max(saved['overall']) < 40  # random gates: not all one expert

    # the counts are the routing the model records: first batch of 4
    counts4 = tool.main([
        CONFIG, path, '--out',
        str(tmp_path /
            'u4'), '--max-images', '4', '--device', 'cpu', '--cfg-options'
    ] + demo_cfg_options(demo_data))
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(
        dict(kv.split('=', 1) for kv in demo_cfg_options(demo_data)))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    batch = next(iter(loader))
    assert len(batch['inputs']) == 4
    model.eval()
    with torch.no_grad():
        model.test_step(batch)
    routing = model.backbone.adapters[0].last_routing()
    for name, info in routing.items():
        expected = torch.bincount(info['expert_ids'].reshape(-1), minlength=8)
        assert torch.equal(counts4[name], expected), name
    assert set(counts) == set(routing)


def test_expert_usage_needs_conv_lora(tiny_sam_file):
    from helpers import tiny_model_cfg
    init_default_scope('mmseg')
    model = MODELS.build(
        tiny_model_cfg(tiny_sam_file[0], adapter=dict(type='LoRA')))
    with pytest.raises(ValueError, match='no ConvLoRA adapter'):
        load_tool('analysis', 'expert_usage.py').conv_lora_adapters(model)
