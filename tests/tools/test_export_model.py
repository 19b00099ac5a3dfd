"""``tools/export_model.py``: merged LoRA (mmseg and official SAM layouts)
and single-file Conv-LoRA / CAD checkpoints reproduce the trained model with
no SAM file and no adapter code path for LoRA."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from mmseg_convlora.models.adapters import LoRALinear
from mmseg_convlora.models.utils import (CheckpointMismatchError,
                                         peft_signature, trainable_state_keys)
from helpers import TINY_IMG_SIZE, build_tiny_sam, load_tool, tiny_model_cfg

ADAPTERS = {
    'lora': dict(type='LoRA', rank=3, alpha=32),
    'convlora': dict(type='ConvLoRA', rank=3, alpha=32),
    'cad': dict(type='CAD', channels=32, input_size=64),
}


def export_tool():
    return load_tool('export_model.py')


def trained(tiny_sam_file, tmp_path, name, **head_kwargs):
    """A config file, a trainable-only checkpoint as training writes it,
    and the model it came from (trainable weights moved off their init)."""
    cfg = Config(
        dict(
            model=tiny_model_cfg(
                tiny_sam_file[0], adapter=ADAPTERS[name], **head_kwargs),
            default_scope='mmseg'))
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    model = MODELS.build(ConfigDict(cfg.model))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():  # trained BatchNorm statistics (CAD)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    keep = trainable_state_keys(model)
    ckpt = str(tmp_path / f'{name}_iter_10.pth')
    torch.save(
        dict(
            state_dict={
                k: v
                for k, v in model.state_dict().items() if k in keep
            },
            meta=dict(peft=peft_signature(model))), ckpt)
    return path, ckpt, model.eval()


def inputs():
    return torch.randn(
        2,
        3,
        TINY_IMG_SIZE,
        TINY_IMG_SIZE,
        generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize('name', list(ADAPTERS))
def test_exported_model_reproduces_trained_model(tiny_sam_file, tmp_path,
                                                 name):
    cfg_path, ckpt, model = trained(tiny_sam_file, tmp_path, name)
    out = str(tmp_path / 'export' / f'{name}_deploy.pth')
    export_tool().main([cfg_path, ckpt, out])
    x = inputs()
    with torch.no_grad():
        expected = model._forward(x)
        if name == 'lora':
            # the unmerged low-rank path (training mode) as the reference
            model.train()
            unmerged = model._forward(x)
            model.eval()
            torch.testing.assert_close(
                expected, unmerged, rtol=1e-5, atol=1e-5)

    deploy_cfg = Config.fromfile(osp.splitext(out)[0] + '.py')
    assert deploy_cfg.model.sam_checkpoint is None  # no SAM file needed
    deploy = MODELS.build(deploy_cfg.model)
    ckpt_data = torch.load(out, weights_only=True)
    assert ckpt_data['meta']['peft']['frozen_weights_saved'] is True
    if name == 'lora':
        assert deploy_cfg.model.backbone.adapter is None
        assert not any(isinstance(m, LoRALinear) for m in deploy.modules())
        assert not any('lora' in k for k in ckpt_data['state_dict'])
        # the encoder keys are SAM's own, with merged qkv weights
        sam_keys = {
            f'backbone.encoder.{k}'
            for k in build_tiny_sam().image_encoder.state_dict()
        }
        assert sam_keys <= set(ckpt_data['state_dict'])
    else:
        assert deploy_cfg.model.backbone.adapter['type'] == \
            ADAPTERS[name]['type']
    load_checkpoint(deploy, out, strict=True)
    deploy.eval()
    with torch.no_grad():
        got = deploy._forward(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_lora_export_in_official_sam_layout(tiny_sam_file, tmp_path):
    # segment_anything's token sequence holds SAM's four mask tokens: only a
    # head trained with them exports to it
    default_cfg, default_ckpt, _ = trained(tiny_sam_file, tmp_path, 'lora')
    with pytest.raises(SystemExit, match='keep_sam_multimask_tokens=True'):
        export_tool().main([
            default_cfg, default_ckpt,
            str(tmp_path / 'refused.pth'), '--format', 'sam'
        ])
    cfg_path, ckpt, model = trained(
        tiny_sam_file, tmp_path, 'lora', keep_sam_multimask_tokens=True)
    out = str(tmp_path / 'sam_merged.pth')
    export_tool().main([cfg_path, ckpt, out, '--format', 'sam'])
    state = torch.load(out, weights_only=True)
    sam = build_tiny_sam()
    sam.load_state_dict(state, strict=True)  # segment_anything loads it
    # ... and it is a sam_checkpoint for the decoder-only config
    plain_cfg = tiny_model_cfg(
        out, adapter=None, keep_sam_multimask_tokens=True)
    plain = MODELS.build(ConfigDict(plain_cfg)).eval()
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            plain._forward(x), model._forward(x), rtol=1e-5, atol=1e-5)
        # SAM's own forward (no prompt, single mask) gives the same mask
        emb = sam.image_encoder(x)
        sparse, dense = sam.prompt_encoder(None, None, None)
        low = torch.cat([
            sam.mask_decoder(
                image_embeddings=emb[i:i + 1],
                image_pe=sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False)[0] for i in range(len(x))
        ])
        torch.testing.assert_close(
            low, model._forward(x), rtol=1e-4, atol=1e-4)


def test_export_refuses_checkpoint_of_another_model(tiny_sam_file, tmp_path):
    _, ckpt, _ = trained(tiny_sam_file, tmp_path, 'lora')
    cfg_path, _, _ = trained(tiny_sam_file, tmp_path, 'convlora')
    with pytest.raises(CheckpointMismatchError, match='another model'):
        export_tool().main([cfg_path, ckpt, str(tmp_path / 'x.pth')])
    cad_cfg, cad_ckpt, _ = trained(tiny_sam_file, tmp_path, 'cad')
    with pytest.raises(SystemExit, match='--format mmseg'):
        export_tool().main(
            [cad_cfg, cad_ckpt,
             str(tmp_path / 'y.pth'), '--format', 'sam'])
