"""SAM backbones returning chosen block / stage outputs for mmseg heads."""
import copy

import pytest
import torch
from mmseg.registry import MODELS

from mmseg_convlora.models.backbones import base_sam_backbone
from helpers import TINY_EMBED_DIM, TINY_ENCODER, TINY_IMG_SIZE, TINY_TINY_VIT


def vit(**kwargs):
    return MODELS.build(
        dict(
            type='SAMViT',
            arch=copy.deepcopy(TINY_ENCODER),
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            **kwargs)).eval()


def tiny_vit(**kwargs):
    return MODELS.build(
        dict(
            type='SAMTinyViT',
            arch=copy.deepcopy(TINY_TINY_VIT),
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            **kwargs)).eval()


def recorded_outputs(modules, run):
    """Outputs of ``modules`` (forward hooks) while ``run()`` runs."""
    seen = {}
    handles = [
        m.register_forward_hook(
            lambda mod, inp, out, i=i: seen.__setitem__(i, out))
        for i, m in enumerate(modules)
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def test_vit_block_outputs_and_embedding():
    torch.manual_seed(0)
    plain = vit()
    multi = vit(out_indices=(1, -2))
    multi.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, TINY_IMG_SIZE, TINY_IMG_SIZE)
    with torch.no_grad():
        (embedding, ) = plain(x)
        seen = recorded_outputs(plain.encoder.blocks, lambda: plain(x))
        outs = multi(x)
    # block 1, then block 0 (-2 of 2 blocks), then the embedding
    assert multi.out_indices == (1, 0)
    assert len(outs) == 3
    torch.testing.assert_close(outs[0], seen[1].permute(0, 3, 1, 2))
    torch.testing.assert_close(outs[1], seen[0].permute(0, 3, 1, 2))
    assert outs[0].shape == (2, TINY_ENCODER['embed_dim'], 8, 8)
    torch.testing.assert_close(outs[2], embedding)


def test_vit_without_embedding_stops_after_the_last_chosen_block():
    backbone = vit(out_indices=(0, ), out_embedding=False)
    x = torch.randn(1, 3, TINY_IMG_SIZE, TINY_IMG_SIZE)
    seen = recorded_outputs(
        list(backbone.encoder.blocks) + [backbone.encoder.neck],
        lambda: backbone(x))
    assert set(seen) == {0}  # neither block 1 nor the neck ran
    (out, ) = backbone(x)
    assert out.shape == (1, TINY_ENCODER['embed_dim'], 8, 8)


def test_tiny_vit_stage_outputs():
    backbone = tiny_vit(out_indices=(0, 1, 2, 3))
    x = torch.randn(2, 3, TINY_IMG_SIZE, TINY_IMG_SIZE)
    with torch.no_grad():
        outs = backbone(x)
        embedding = backbone.encoder(x)  # the reference encoder's output
    dims = TINY_TINY_VIT['embed_dims']
    assert [tuple(o.shape) for o in outs[:4]] == [(2, dims[0], 32, 32),
                                                  (2, dims[1], 16, 16),
                                                  (2, dims[2], 8, 8),
                                                  (2, dims[3], 8, 8)]
    torch.testing.assert_close(outs[4], embedding)
    # stage 3's output is what the neck reads
    torch.testing.assert_close(backbone.encoder.neck(outs[3]), embedding)


def test_adapters_act_on_the_chosen_blocks():
    """LoRA inside the blocks changes the block outputs once trained."""
    adapter = dict(type='LoRA', rank=2)
    backbone = vit(out_indices=(0, 1), adapter=adapter)
    with torch.no_grad():
        for layer in backbone.adapters[0].layers:
            layer.lora_B.normal_()
    plain = vit(out_indices=(0, 1))
    plain.load_state_dict({
        k: v
        for k, v in backbone.state_dict().items() if 'lora' not in k
    })
    x = torch.randn(1, 3, TINY_IMG_SIZE, TINY_IMG_SIZE)
    with torch.no_grad():
        a, b = backbone(x), plain(x)
    assert not torch.allclose(a[0], b[0])


@pytest.mark.parametrize('make', [vit, tiny_vit])
def test_bad_out_indices(make):
    with pytest.raises(ValueError, match='out of range'):
        make(out_indices=(7, ))
    with pytest.raises(ValueError, match='needs out_indices'):
        make(out_embedding=False)
    with pytest.raises(ValueError, match='out_embedding=True'):
        make(
            out_indices=(0, ),
            out_embedding=False,
            adapter=dict(type='CAD', input_size=64, channels=TINY_EMBED_DIM))
    with pytest.raises(ValueError, match='embedding_source gives only'):
        make(
            out_indices=(0, ),
            embedding_source=dict(type='CachedEmbeddings', dir=None))


@pytest.mark.parametrize('adapter', ['LoRA', 'ConvLoRA'])
def test_block_maps_at_zero_init_equal_the_plain_backbone(adapter):
    """The maps mmseg's necks read are the frozen SAM's until B trains."""
    torch.manual_seed(0)
    adapted = vit(
        out_indices=(0, 1), out_embedding=False, adapter=dict(type=adapter))
    plain = vit(out_indices=(0, 1), out_embedding=False)
    plain.load_state_dict({
        k: v
        for k, v in adapted.state_dict().items() if k in plain.state_dict()
    })
    x = torch.randn(2, 3, TINY_IMG_SIZE, TINY_IMG_SIZE)
    with torch.no_grad():
        for a, b in zip(adapted(x), plain(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('old', [dict(dir='cache_dir'), 'cache_dir'])
def test_embedding_cache_is_the_deprecated_name_of_embedding_source(
        old, monkeypatch):
    """Configs written before the rename build the same backbone, with a
    deprecation message naming the new setting."""
    messages = []
    monkeypatch.setattr(base_sam_backbone, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    backbone = vit(embedding_cache=old)
    assert backbone.encoder is None
    assert type(backbone.embedding_source).__name__ == 'CachedEmbeddings'
    assert backbone.embedding_source.dir == 'cache_dir'
    assert messages == [
        'model.backbone.embedding_cache is deprecated: write '
        "embedding_source={'type': 'CachedEmbeddings', 'dir': 'cache_dir'}."
    ]
    with pytest.raises(ValueError, match='give embedding_source only'):
        vit(embedding_cache=old,
            embedding_source=dict(type='CachedEmbeddings', dir='x'))
