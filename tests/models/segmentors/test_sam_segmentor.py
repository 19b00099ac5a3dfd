"""SAMSegmentor: the data samples' path to the backbone, whole inference."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

from helpers import fake_batch, tiny_model_cfg


def _recording_backbone(model):
    """Replace the backbone's forward by one that records its samples."""
    seen = []
    forward = model.backbone.forward

    def record(x, data_samples=None):
        seen.append(data_samples)
        return forward(x, data_samples)

    model.backbone.forward = record
    return seen


def test_data_samples_reach_the_backbone_in_every_mode(tiny_sam_file):
    model = MODELS.build(tiny_model_cfg(tiny_sam_file[0]))
    assert model.backbone_reads_samples
    seen = _recording_backbone(model)
    inputs, samples = fake_batch(2)
    model.loss(inputs, samples)
    model.eval()
    with torch.no_grad():
        model.predict(inputs, samples)
        model._forward(inputs, samples)
        model.predict(inputs)
    assert [s is samples for s in seen[:3]] == [True, True, True]
    assert seen[3] is None


def test_backbones_without_data_samples_get_only_the_images(tiny_sam_file):
    model = MODELS.build(tiny_model_cfg(tiny_sam_file[0]))
    backbone = model.backbone
    calls = []

    def images_only(x):
        calls.append(x.shape)
        return type(backbone).forward(backbone, x)

    backbone.forward = images_only
    model.backbone_reads_samples = False
    inputs, samples = fake_batch(1)
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, samples)
    assert calls == [inputs.shape] and len(out) == 1


def test_slide_inference_is_refused(tiny_sam_file):
    cfg = tiny_model_cfg(tiny_sam_file[0])
    cfg['test_cfg'] = dict(mode='slide', crop_size=(64, 64), stride=(32, 32))
    with pytest.raises(ValueError, match="mode='whole'"):
        MODELS.build(cfg)


def upernet_cfg(checkpoint, adapter=None):
    """Tiny SAM ViT blocks 0 and 1 -> MultiLevelNeck -> UPerHead, with an
    FCNHead auxiliary head (mmseg's UPerNet layout)."""
    cfg = tiny_model_cfg(checkpoint, adapter=adapter)
    cfg['backbone'].update(out_indices=(0, 1), out_embedding=False)
    cfg.update(
        neck=dict(
            type='MultiLevelNeck',
            in_channels=[32, 32],
            out_channels=16,
            scales=[2, 1]),
        decode_head=dict(
            type='UPerHead',
            in_channels=[16, 16],
            in_index=[0, 1],
            pool_scales=(1, 2),
            channels=16,
            num_classes=3),
        auxiliary_head=dict(
            type='FCNHead',
            in_channels=16,
            in_index=0,
            channels=8,
            num_convs=1,
            num_classes=3,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)))
    return cfg


def test_mmseg_heads_on_sam_block_maps(tiny_sam_file):
    path, sam = tiny_sam_file
    # the SAM checkpoint reaches the backbone only (mmseg's heads have no
    # checkpoint argument)
    model = MODELS.build(
        upernet_cfg(path, adapter=dict(type='ConvLoRA', dispatch='dense')))
    assert torch.equal(model.backbone.encoder.patch_embed.proj.weight,
                       sam.image_encoder.patch_embed.proj.weight)
    inputs, samples = fake_batch(2)
    for s in samples:
        s.gt_sem_seg.data[:, :8] = 2
    model.train()
    losses = model.loss(inputs, samples)
    assert set(losses) == {
        'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce', 'aux.acc_seg',
        'loss_moe'
    }
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    assert any('lora_A' in n for n in trainable)
    assert any(n.startswith('neck.') for n in trainable)

    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, samples)
        logits = model.encode_decode(inputs, [s.metainfo for s in samples])
    probs = logits.softmax(dim=1)
    assert out[0].seg_logits.data.shape == (3, 128, 128)
    torch.testing.assert_close(out[1].seg_logits.data, probs[1])
    assert torch.equal(out[1].pred_sem_seg.data[0], probs[1].argmax(0))


MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=[1] * 4,
    num_heads=[1, 1, 2, 2],
    patch_sizes=[7, 3, 3, 3],
    sr_ratios=[8, 4, 2, 1],
    mlp_ratio=2)


def test_peft_backbone_with_sliding_inference():
    """Off SAM backbones mmseg's sliding-window inference is allowed."""
    cfg = dict(
        type='SAMSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(
            type='PEFTBackbone',
            backbone=MIT,
            adapter=dict(
                type='ConvLoRA',
                targets=r'layers\.\d+\.1\.0\.attn\.attn'
                r'\.(q|v)_proj')),
        decode_head=dict(
            type='SegformerHead',
            in_channels=[8, 8, 16, 16],
            in_index=[0, 1, 2, 3],
            channels=8,
            num_classes=3),
        test_cfg=ConfigDict(mode='slide', crop_size=(64, 64), stride=(48, 48)))
    model = MODELS.build(cfg).eval()
    inputs, samples = fake_batch(1, size=96)
    with torch.no_grad():
        (out, ) = model.predict(inputs, samples)
        logits = model.slide_inference(inputs, [samples[0].metainfo])
    torch.testing.assert_close(out.seg_logits.data, logits[0].softmax(0))
    # a training step adds Conv-LoRA's load-balancing loss
    model.train()
    inputs, samples = fake_batch(1, size=64)
    assert 'loss_moe' in model.loss(inputs, samples)
