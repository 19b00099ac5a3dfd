"""tools/model_converters/hf_sam_to_official.py on a tiny HF-shaped SAM.

The test turns a tiny official SAM state dict into the Hugging Face
``SamModel`` layout with the mapping of transformers'
``models/sam/convert_sam_to_hf.py`` (written out here, independently of the
converter), runs the converter, and checks that the result is the original
state dict and that SAMViT and SAMMaskDecoderHead load it.
"""
import json
import re

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_convlora  # noqa: F401
from helpers import build_tiny_sam, load_tool, tiny_model_cfg

# transformers/models/sam/convert_sam_to_hf.py (official -> HF)
KEYS_TO_MODIFY_MAPPING = {
    'iou_prediction_head.layers.0': 'iou_prediction_head.proj_in',
    'iou_prediction_head.layers.1': 'iou_prediction_head.layers.0',
    'iou_prediction_head.layers.2': 'iou_prediction_head.proj_out',
    'mask_decoder.output_upscaling.0': 'mask_decoder.upscale_conv1',
    'mask_decoder.output_upscaling.1': 'mask_decoder.upscale_layer_norm',
    'mask_decoder.output_upscaling.3': 'mask_decoder.upscale_conv2',
    'mask_downscaling.0': 'mask_embed.conv1',
    'mask_downscaling.1': 'mask_embed.layer_norm1',
    'mask_downscaling.3': 'mask_embed.conv2',
    'mask_downscaling.4': 'mask_embed.layer_norm2',
    'mask_downscaling.6': 'mask_embed.conv3',
    'point_embeddings': 'point_embed',
    'pe_layer.positional_encoding_gaussian_matrix':
    'shared_embedding.positional_embedding',
    'image_encoder': 'vision_encoder',
    'neck.0': 'neck.conv1',
    'neck.1': 'neck.layer_norm1',
    'neck.2': 'neck.conv2',
    'neck.3': 'neck.layer_norm2',
    'patch_embed.proj': 'patch_embed.projection',
    '.norm': '.layer_norm',
    'blocks': 'layers',
}


def official_to_hf(state_dict):
    out = {}
    state_dict = dict(state_dict)
    state_dict.pop('pixel_mean', None)
    state_dict.pop('pixel_std', None)
    pattern = r'.*.output_hypernetworks_mlps.(\d+).layers.(\d+).*'
    for key, value in state_dict.items():
        for old, new in KEYS_TO_MODIFY_MAPPING.items():
            if old in key:
                key = key.replace(old, new)
        if re.match(pattern, key):
            layer_nb = int(re.match(pattern, key).group(2))
            if layer_nb == 0:
                key = key.replace('layers.0', 'proj_in')
            elif layer_nb == 1:
                key = key.replace('layers.1', 'layers.0')
            elif layer_nb == 2:
                key = key.replace('layers.2', 'proj_out')
        out[key] = value
    out['shared_image_embedding.positional_embedding'] = out[
        'prompt_encoder.shared_embedding.positional_embedding']
    return out


@pytest.fixture(scope='module')
def tiny():
    """(official state dict, HF state dict) of a tiny SAM."""
    official = {k: v.clone() for k, v in build_tiny_sam().state_dict().items()}
    return official, official_to_hf(official)


def test_hf_layout_looks_like_transformers(tiny):
    _, hf = tiny
    for key in ('vision_encoder.layers.0.layer_norm1.weight',
                'vision_encoder.layers.1.attn.rel_pos_h',
                'vision_encoder.neck.layer_norm2.bias',
                'vision_encoder.patch_embed.projection.weight',
                'prompt_encoder.mask_embed.conv3.weight',
                'prompt_encoder.point_embed.3.weight',
                'mask_decoder.transformer.layer_norm_final_attn.weight',
                'mask_decoder.transformer.layers.0.layer_norm4.weight',
                'mask_decoder.output_hypernetworks_mlps.2.proj_out.bias',
                'mask_decoder.iou_prediction_head.layers.0.weight',
                'mask_decoder.upscale_layer_norm.weight'):
        assert key in hf, key
    assert not any(k.startswith('image_encoder') for k in hf)


def test_round_trip_into_official_layout_that_loads(tiny, tmp_path):
    official, hf = tiny
    tool = load_tool('model_converters', 'hf_sam_to_official.py')
    src = tmp_path / 'sam-vit-tiny'
    src.mkdir()
    torch.save(hf, src / 'pytorch_model.bin')
    out = str(tmp_path / 'converted.pth')
    tool.main([str(src), out])
    converted = torch.load(out, weights_only=True)
    assert set(converted) == set(official)
    for key, value in official.items():
        assert torch.equal(converted[key], value), key

    # the real loading code: SAMViT (image_encoder.*) and the head
    # (mask_decoder.*, prompt_encoder.*) read the converted file
    init_default_scope('mmseg')
    orig_file = str(tmp_path / 'official.pth')
    torch.save(official, orig_file)
    a = MODELS.build(tiny_model_cfg(out)).state_dict()
    b = MODELS.build(tiny_model_cfg(orig_file)).state_dict()
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_sharded_checkpoint(tiny, tmp_path):
    official, hf = tiny
    tool = load_tool('model_converters', 'hf_sam_to_official.py')
    keys = sorted(hf)
    shards = {
        'pytorch_model-00001-of-00002.bin': keys[:len(keys) // 2],
        'pytorch_model-00002-of-00002.bin': keys[len(keys) // 2:]
    }
    weight_map = {}
    for name, part in shards.items():
        torch.save({k: hf[k] for k in part}, tmp_path / name)
        weight_map.update({k: name for k in part})
    with open(tmp_path / 'pytorch_model.bin.index.json', 'w') as f:
        json.dump(dict(metadata={}, weight_map=weight_map), f)
    state = tool.hf_to_official(tool.load_hf_state_dict(str(tmp_path)))
    assert set(state) == set(official)


def test_safetensors(tiny, tmp_path):
    official, hf = tiny
    tool = load_tool('model_converters', 'hf_sam_to_official.py')
    path = tmp_path / 'model.safetensors'
    try:
        from safetensors.torch import save_file
    except ImportError:
        path.write_bytes(b'not read')
        with pytest.raises(
                tool.ConversionError, match='pip install safetensors'):
            tool.main([str(tmp_path), str(tmp_path / 'out.pth')])
        return
    hf = {
        k: v.contiguous()
        for k, v in hf.items()
        if k != 'shared_image_embedding.positional_embedding'
    }
    save_file(hf, str(path))
    state = tool.main([str(tmp_path), str(tmp_path / 'out.pth')])
    assert all(torch.equal(state[k], official[k]) for k in official)


def test_refuses_what_is_not_a_fitting_sam(tiny, tmp_path):
    _, hf = tiny
    tool = load_tool('model_converters', 'hf_sam_to_official.py')
    with pytest.raises(tool.ConversionError, match='Unexpected key'):
        tool.hf_to_official(dict(hf, **{'vision_tower.x': torch.zeros(1)}))
    with pytest.raises(tool.ConversionError, match='not a Hugging Face'):
        tool.hf_to_official({'image_encoder.pos_embed': torch.zeros(1)})
    broken = {k: v for k, v in hf.items() if 'layers.1.mlp.lin2' not in k}
    with pytest.raises(tool.ConversionError, match='missing'):
        tool.check_official_layout(tool.hf_to_official(broken))
    torch.save(hf, tmp_path / 'pytorch_model.bin')
    with pytest.raises(tool.ConversionError, match='not vit_h'):
        tool.main([str(tmp_path), str(tmp_path / 'o.pth'), '--arch', 'vit_h'])
    assert tool._cli([str(tmp_path / 'nowhere'), 'x.pth']) == 1


@pytest.mark.parametrize('arch', ['vit_b', 'vit_h'])
def test_full_size_key_layout(arch):
    """Shapes only (meta device): the official ViT-B/H key set survives the
    round trip and the layout check infers the official hyper-parameters."""
    from segment_anything import sam_model_registry
    tool = load_tool('model_converters', 'hf_sam_to_official.py')
    with torch.device('meta'):
        official = sam_model_registry[arch]().state_dict()
    back = tool.hf_to_official(official_to_hf(official))
    assert set(back) == set(official)
    shape = tool.check_official_layout(back)
    expected = {
        'vit_b': (768, 12, 12, (2, 5, 8, 11)),
        'vit_h': (1280, 32, 16, (7, 15, 23, 31))
    }[arch]
    assert (shape['embed_dim'], shape['depth'], shape['num_heads'],
            shape['global_attn_indexes']) == expected
    assert shape['window_size'] == 14 and shape['img_size'] == 1024
