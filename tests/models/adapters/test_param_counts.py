"""Trainable parameter counts (binary head, r = 3, M = 8): SAM's decoder
3,505,536, plus 4rC per block for LoRA and another 2rM + M(9r^2 + r) = 720
per block for Conv-LoRA; built on the meta device (shapes only, no memory,
no checkpoint)."""
import pytest
import torch

import mmseg_convlora  # noqa: F401
from mmseg_convlora.models.adapters import CAD
from helpers import build_meta_segmentor as build_meta

DECODER_ONLY = 3_505_536
SAM_MASK_DECODER = 4_058_340
CAD_PARAMS = 1_773_568
EXPECTED = {
    # arch: (decoder-only, LoRA, Conv-LoRA) trainable parameters
    'vit_b': (DECODER_ONLY, 3_616_128, 3_624_768),
    'vit_l': (DECODER_ONLY, 3_800_448, 3_817_728),
    'vit_h': (DECODER_ONLY, 3_997_056, 4_020_096),
}
ARCH = {'vit_b': (768, 12), 'vit_l': (1024, 24), 'vit_h': (1280, 32)}


@pytest.mark.parametrize('arch', sorted(EXPECTED))
def test_trainable_counts(arch):
    decoder_only, lora, conv_lora = EXPECTED[arch]
    C, depth = ARCH[arch]
    counts = {}
    for name, adapter in [('none', None), ('lora', dict(type='LoRA')),
                          ('conv_lora', dict(type='ConvLoRA')),
                          ('cad', dict(type='CAD'))]:
        model = build_meta(arch, adapter)
        counts[name] = model.parameter_counts()
    assert counts['none']['trainable'] == decoder_only
    assert counts['lora']['trainable'] == lora
    assert counts['conv_lora']['trainable'] == conv_lora
    # 4rC per block for LoRA, another 2rM + M(9r^2 + r) = 720 for Conv-LoRA.
    assert lora - decoder_only == depth * 4 * 3 * C
    assert conv_lora - lora == depth * 720
    # Adapters add trainable parameters only; nothing frozen is duplicated.
    for name in ('lora', 'conv_lora', 'cad'):
        assert (counts[name]['total'] -
                counts['none']['total'] == counts[name]['trainable'] -
                decoder_only)
    assert counts['cad']['trainable'] == CAD_PARAMS + DECODER_ONLY


def test_cad_counts():
    with torch.device('meta'):
        cad = CAD()
    assert sum(p.numel() for p in cad.parameters()) == CAD_PARAMS
    # The CAD paper's 5,831,908 counts SAM's full mask decoder.
    assert CAD_PARAMS + SAM_MASK_DECODER == 5_831_908
