import copy

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT

from mmseg_convlora.models.backbones.sam_vit import SAMViT
from mmseg_convlora.models.utils import SAMCheckpointError
from helpers import TINY_EMBED_DIM, TINY_ENCODER


def tiny_backbone(checkpoint=None, img_size=128, **kwargs):
    return MODELS.build(
        dict(
            type='SAMViT',
            arch=copy.deepcopy(TINY_ENCODER),
            img_size=img_size,
            out_channels=TINY_EMBED_DIM,
            checkpoint=checkpoint,
            **kwargs))


def expanded_state_dict(encoder_on_meta):
    """Official-layout keys with the right shapes but almost no storage."""
    return {
        'image_encoder.' + k: torch.zeros(1).expand(v.shape)
        for k, v in encoder_on_meta.state_dict().items()
    }


def test_tiny_checkpoint_equals_segment_anything_encoder(tiny_sam_file):
    path, sam = tiny_sam_file
    backbone = tiny_backbone(path).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        ours = backbone(x)[0]
        ref = sam.image_encoder(x)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_vit_b_shaped_checkpoint_loads_without_missing_keys(tmp_path):
    torch.manual_seed(0)
    sam = sam_model_registry['vit_b']()  # random weights, official keys
    for p in sam.image_encoder.parameters():
        torch.nn.init.normal_(p, std=0.02)
    path = tmp_path / 'sam_vit_b_01ec64.pth'
    torch.save(sam.state_dict(), path)
    backbone = SAMViT(arch='vit_b', checkpoint=str(path))
    ref = sam.image_encoder.state_dict()
    ours = backbone.encoder.state_dict()
    assert set(ours) == set(ref)
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key


def test_vit_l_checkpoint_into_vit_b_preset_is_refused(tmp_path):
    with torch.device('meta'):
        vit_l = ImageEncoderViT(
            embed_dim=1024,
            depth=24,
            num_heads=16,
            use_rel_pos=True,
            window_size=14,
            global_attn_indexes=(5, 11, 17, 23))
    path = tmp_path / 'sam_vit_l_0b3195.pth'
    torch.save(expanded_state_dict(vit_l), path)
    with torch.device('meta'):
        with pytest.raises(SAMCheckpointError) as err:
            SAMViT(arch='vit_b', checkpoint=str(path))
    msg = str(err.value)
    assert str(path) in msg and 'vit_l' in msg and 'vit_b' in msg
    assert "arch='vit_l'" in msg


def test_missing_checkpoint_names_file_and_download(tmp_path):
    path = str(tmp_path / 'checkpoints' / 'sam_vit_h_4b8939.pth')
    with torch.device('meta'):
        with pytest.raises(SAMCheckpointError) as err:
            SAMViT(arch='vit_h', checkpoint=path)
    msg = str(err.value)
    assert path in msg
    assert 'sam_vit_h_4b8939.pth' in msg
    assert 'dl.fbaipublicfiles.com/segment_anything' in msg
    # the key that works (a bare sam_checkpoint=... is ignored)
    assert '--cfg-options model.sam_checkpoint=/path/to/sam_vit_h' in msg


def test_missing_demo_sam_points_at_the_demo_tool(tmp_path):
    path = str(tmp_path / 'data' / 'demo_shadow' / 'tiny_sam.pth')
    with torch.device('meta'):
        with pytest.raises(SAMCheckpointError) as err:
            SAMViT(
                arch=dict(embed_dim=32, depth=2, num_heads=2),
                img_size=128,
                checkpoint=path)
    msg = str(err.value)
    assert path in msg and 'python tools/make_demo_data.py' in msg
    assert 'fbaipublicfiles' not in msg


def test_mistyped_adapter_key_suggests_the_right_one():
    with torch.device('meta'):
        with pytest.raises(TypeError) as err:
            SAMViT(arch='vit_b', adapter=dict(type='ConvLoRA', rnak=3))
    msg = str(err.value)
    assert "ConvLoRA in model.backbone.adapter does not take 'rnak' (did " \
        "you mean 'rank'?)" in msg


def test_truncated_checkpoint_is_a_clear_error(tiny_sam_file, tmp_path):
    data = open(tiny_sam_file[0], 'rb').read()
    path = tmp_path / 'truncated.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(SAMCheckpointError, match='truncated'):
        tiny_backbone(str(path))


def test_not_a_sam_checkpoint(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, path)
    with pytest.raises(SAMCheckpointError, match='not a SAM checkpoint'):
        tiny_backbone(str(path))


def test_frozen_encoder_has_no_grad_and_stays_in_eval(tiny_sam_file):
    backbone = tiny_backbone(tiny_sam_file[0])
    backbone.train()
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.encoder.training
    out = backbone(torch.randn(1, 3, 128, 128))[0]
    assert out.grad_fn is None  # no activations kept for a frozen encoder
    trainable = tiny_backbone(tiny_sam_file[0], frozen=False).train()
    assert trainable.encoder.training
    assert all(p.requires_grad for p in trainable.parameters())


def test_other_input_size_resizes_position_embeddings(tiny_sam_file):
    path, sam = tiny_sam_file
    backbone = tiny_backbone(path, img_size=256)
    src = sam.image_encoder.pos_embed  # (1, 8, 8, C)
    expected = F.interpolate(
        src.permute(0, 3, 1, 2),
        size=(16, 16),
        mode='bicubic',
        align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(backbone.encoder.pos_embed, expected)
    # global block (index 1): relative table 2 * 8 - 1 -> 2 * 16 - 1
    glob = backbone.encoder.blocks[1].attn.rel_pos_h
    assert glob.shape[0] == 31
    ref = sam.image_encoder.blocks[1].attn.rel_pos_h
    torch.testing.assert_close(glob[0], ref[0])  # ends are kept
    torch.testing.assert_close(glob[-1], ref[-1])
    # windowed block: window size unchanged, table loaded as is
    torch.testing.assert_close(backbone.encoder.blocks[0].attn.rel_pos_h,
                               sam.image_encoder.blocks[0].attn.rel_pos_h)
    out = backbone.eval()(torch.randn(1, 3, 256, 256))[0]
    assert out.shape == (1, TINY_EMBED_DIM, 16, 16)


def test_wrong_input_size_is_refused(tiny_sam_file):
    backbone = tiny_backbone(tiny_sam_file[0])
    with pytest.raises(ValueError, match='Resize'):
        backbone(torch.randn(1, 3, 96, 96))
