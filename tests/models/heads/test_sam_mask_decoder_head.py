import copy
import math

import pytest
import torch
from mmseg.registry import MODELS
from segment_anything.modeling import MaskDecoder

from mmseg_convlora.models.heads import (SAMMaskClassificationHead,
                                         SAMMaskDecoderHead,
                                         semantic_inference)
from mmseg_convlora.models.utils import (CheckpointMismatchError,
                                         SAMCheckpointError)
from helpers import tiny_model_cfg


def sam_reference_logits(sam, images):
    """segment_anything's own pipeline: encoder -> prompt encoder with no
    prompts -> mask decoder, single-mask output."""
    out = []
    with torch.no_grad():
        emb = sam.image_encoder(images)
        for i in range(images.shape[0]):
            sparse, dense = sam.prompt_encoder(None, None, None)
            masks, _ = sam.mask_decoder(
                image_embeddings=emb[i:i + 1],
                image_pe=sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False)
            out.append(masks)
    return torch.cat(out)


def test_binary_logits_equal_segment_anything(tiny_sam_file):
    """keep_sam_multimask_tokens=True: exactly Sam(multimask_output=False).
    """
    path, sam = tiny_sam_file
    model = MODELS.build(tiny_model_cfg(
        path, keep_sam_multimask_tokens=True)).eval()
    images = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        ours = model.decode_head(model.backbone(images))
    ref = sam_reference_logits(sam, images)
    assert ours.shape == ref.shape == (3, 1, 32, 32)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def reference_single_token_logits(sam, images):
    """The Conv-LoRA reference's binary decoder: SAM's mask decoder with one
    mask token (SAM's token 0) and hypernetwork MLP #0, i.e.
    ``segment_anything``'s ``MaskDecoder(num_multimask_outputs=0)`` with
    SAM's weights, no prompts, single-mask output."""
    md = sam.mask_decoder
    dec = MaskDecoder(
        transformer_dim=md.transformer_dim,
        transformer=copy.deepcopy(md.transformer),
        num_multimask_outputs=0,
        iou_head_depth=3,
        iou_head_hidden_dim=md.iou_prediction_head.layers[0].out_features)
    state = md.state_dict()
    state['mask_tokens.weight'] = state['mask_tokens.weight'][:1]
    num_layers = len(md.iou_prediction_head.layers)
    last = f'iou_prediction_head.layers.{num_layers - 1}'
    state[last + '.weight'] = state[last + '.weight'][:1]
    state[last + '.bias'] = state[last + '.bias'][:1]
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith('output_hypernetworks_mlps.')
        or k.startswith('output_hypernetworks_mlps.0.')
    }
    dec.load_state_dict(state, strict=True)
    with torch.no_grad():
        emb = sam.image_encoder(images)
        sparse, dense = sam.prompt_encoder(None, None, None)
        return torch.cat([
            dec(image_embeddings=emb[i:i + 1],
                image_pe=sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False)[0] for i in range(len(images))
        ])


def test_default_binary_head_is_the_reference_single_token_decoder(
        tiny_sam_file):
    """By default the token sequence holds only SAM's first mask token (the
    Conv-LoRA reference); keeping the three multi-mask tokens changes the
    output, not the trainable count."""
    path, sam = tiny_sam_file
    drop = MODELS.build(tiny_model_cfg(path)).eval()
    assert drop.decode_head.keep_sam_multimask_tokens is False
    assert drop.decode_head.sam_multimask_tokens is None
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        ours = drop.decode_head(drop.backbone(images))
    ref = reference_single_token_logits(sam, images)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)

    keep = MODELS.build(tiny_model_cfg(path,
                                       keep_sam_multimask_tokens=True)).eval()
    assert keep.parameter_counts()['trainable'] == \
        drop.parameter_counts()['trainable']
    with torch.no_grad():
        kept = keep.decode_head(keep.backbone(images))
    assert not torch.allclose(kept, ours, atol=1e-3)


def test_checkpoint_of_the_other_token_sequence_is_refused(tiny_sam_file):
    path, _ = tiny_sam_file
    keep = MODELS.build(tiny_model_cfg(path, keep_sam_multimask_tokens=True))
    drop = MODELS.build(tiny_model_cfg(path))
    keep_state, drop_state = keep.state_dict(), drop.state_dict()
    assert set(keep_state) - set(drop_state) == {
        'decode_head.sam_multimask_tokens'
    }
    # the segmentor's checkpoint check names the setting that loads it ...
    with pytest.raises(
            CheckpointMismatchError, match='keep_sam_multimask_tokens=True'):
        drop.load_state_dict(keep_state)
    with pytest.raises(
            CheckpointMismatchError, match='keep_sam_multimask_tokens=False'):
        keep.load_state_dict(drop_state)

    # ... and so does the head's own, for a head loaded on its own
    def head_state(state):
        return {
            k[len('decode_head.'):]: v
            for k, v in state.items() if k.startswith('decode_head.')
        }

    with pytest.raises(
            SAMCheckpointError, match='keep_sam_multimask_tokens=True'):
        drop.decode_head.load_state_dict(head_state(keep_state), strict=False)
    with pytest.raises(
            SAMCheckpointError, match='keep_sam_multimask_tokens=False'):
        keep.decode_head.load_state_dict(head_state(drop_state), strict=False)
    # the same sequence loads (also non-strictly, as checkpoints are loaded)
    drop.load_state_dict(drop_state)
    keep.load_state_dict(keep_state, strict=False)
    # a head state dict without query_tokens is not checked
    drop.decode_head.load_state_dict(
        {
            k[len('decode_head.'):]: v
            for k, v in keep_state.items()
            if k.startswith('decode_head.mask_decoder.')
        },
        strict=False)


@pytest.mark.parametrize('arch', ['vit_b', 'vit_l', 'vit_h'])
def test_decoder_only_trainable_parameters(arch):
    cfg = dict(
        type='SAMSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='SAMViT', arch=arch),
        decode_head=dict(type='SAMMaskDecoderHead'))
    with torch.device('meta'):
        model = MODELS.build(cfg)
    assert model.parameter_counts()['trainable'] == 3_505_536


def test_trainable_parts_of_the_head(tiny_sam_file):
    model = MODELS.build(tiny_model_cfg(tiny_sam_file[0]))
    head = model.decode_head
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert 'query_tokens' in trainable
    assert 'mask_decoder.iou_token.weight' in trainable
    assert not any(n.startswith('prompt_encoder') for n in trainable)
    assert not any('iou_prediction_head' in n for n in trainable)
    assert len(head.mask_decoder.output_hypernetworks_mlps) == 1
    # the single query starts as SAM's single-mask token 0
    sam = tiny_sam_file[1]
    torch.testing.assert_close(head.query_tokens[0],
                               sam.mask_decoder.mask_tokens.weight[0])


@pytest.mark.parametrize('arch', ['vit_b', 'vit_h'])
@pytest.mark.parametrize('num_queries,num_classes', [(10, 3), (100, 12)])
def test_multiclass_trainable_parameters_match_formula(arch, num_queries,
                                                       num_classes):
    from mmseg_convlora.models.utils import decoder_trainable_formula
    cfg = dict(
        type='SAMSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='SAMViT', arch=arch),
        decode_head=dict(
            type='SAMMaskClassificationHead',
            num_classes=num_classes,
            num_queries=num_queries,
            loss_decode=dict(
                type='MaskClassificationLoss', num_classes=num_classes)))
    with torch.device('meta'):
        model = MODELS.build(cfg)
    expected = 3_505_536 + 256 * (num_queries - 1) + 257 * (num_classes + 1)
    assert decoder_trainable_formula(num_queries, num_classes) == expected
    assert model.parameter_counts()['trainable'] == expected


def test_multiclass_head_outputs_and_semantic_inference(tiny_sam_file):
    cfg = tiny_model_cfg(
        tiny_sam_file[0],
        num_classes=3,
        out_channels=3,
        threshold=None,
        num_queries=5,
        loss=dict(
            type='MaskClassificationLoss', num_classes=3, num_points=256))
    model = MODELS.build(cfg).eval()
    head = model.decode_head
    # every query starts as SAM's token 0
    sam_token0 = tiny_sam_file[1].mask_decoder.mask_tokens.weight[0]
    for q in range(5):
        torch.testing.assert_close(head.query_tokens[q], sam_token0)
    with torch.no_grad():
        cls_logits, mask_logits = head(
            model.backbone(torch.randn(2, 3, 128, 128)))
        assert cls_logits.shape == (2, 5, 4)
        assert mask_logits.shape == (2, 5, 32, 32)
        scores = head.predict_by_feat((cls_logits, mask_logits),
                                      [dict(img_shape=(32, 32))])
    # the einsum by explicit loops
    expected = torch.zeros(2, 3, 32, 32)
    for b in range(2):
        for q in range(5):
            p = cls_logits[b, q].softmax(-1)
            for c in range(3):
                expected[b, c] += p[c] * mask_logits[b, q].sigmoid()
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)


def test_semantic_inference_matches_explicit_sum():
    torch.manual_seed(0)
    B, N, K, h, w = 2, 3, 3, 4, 5
    cls = torch.randn(B, N, K + 1)
    masks = torch.randn(B, N, h, w)
    out = semantic_inference(cls, masks)
    assert out.shape == (B, K, h, w)
    expected = torch.zeros(B, K, h, w)
    for b in range(B):
        for q in range(N):
            denom = sum(math.exp(v) for v in cls[b, q].tolist())
            for c in range(K):
                p = math.exp(cls[b, q, c].item()) / denom
                for y in range(h):
                    for x in range(w):
                        s = 1 / (1 + math.exp(-masks[b, q, y, x].item()))
                        expected[b, c, y, x] += p * s
    assert torch.allclose(out, expected, atol=1e-5)


def test_binary_head_refuses_classes_and_points_to_the_multiclass_head():
    with pytest.raises(ValueError, match='SAMMaskClassificationHead'):
        SAMMaskDecoderHead(
            num_classes=3,
            out_channels=3,
            img_size=64,
            embed_dim=16,
            decoder=dict(mlp_dim=32, num_heads=2))
    with pytest.raises(ValueError, match="type='SAMMaskDecoderHead'"):
        SAMMaskClassificationHead(num_classes=1, img_size=64, embed_dim=16)
    with pytest.raises(ValueError, match='threshold'):
        SAMMaskClassificationHead(
            num_classes=3, threshold=0.5, img_size=64, embed_dim=16)


@pytest.mark.parametrize('head',
                         ['SAMMaskDecoderHead', 'SAMMaskClassificationHead'])
def test_pixel_samplers_are_refused(head):
    """mmseg's OHEM sampler weights per-pixel losses; nothing here has them,
    so a config asking for it must not silently train without it."""
    cfg = dict(
        type=head,
        num_classes=2 if head == 'SAMMaskDecoderHead' else 3,
        img_size=64,
        embed_dim=16,
        decoder=dict(mlp_dim=32, num_heads=2),
        sampler=dict(type='OHEMPixelSampler', thresh=0.7))
    with pytest.raises(ValueError, match='sampler'):
        MODELS.build(cfg)


def test_multiclass_loss_defaults_to_the_heads_classes():
    head = SAMMaskClassificationHead(
        num_classes=4,
        ignore_index=7,
        img_size=64,
        embed_dim=16,
        decoder=dict(mlp_dim=32, num_heads=2))
    assert type(head.loss_decode).__name__ == 'MaskClassificationLoss'
    assert head.loss_decode.num_classes == 4
    assert head.loss_decode.ignore_index == 7
    assert head.out_channels == 4 and head.num_queries == 10
    with pytest.raises(ValueError, match='num_classes=3 but the head has 4'):
        SAMMaskClassificationHead(
            num_classes=4,
            img_size=64,
            embed_dim=16,
            loss_decode=dict(type='MaskClassificationLoss', num_classes=3))


def test_old_multiclass_configs_build_the_multiclass_head(tiny_sam_file):
    """A config naming the multi-class head SAMMaskDecoderHead (before the
    split) builds SAMMaskClassificationHead with the same weights' keys."""
    new_cfg = tiny_model_cfg(
        tiny_sam_file[0],
        num_classes=3,
        out_channels=3,
        threshold=None,
        num_queries=5,
        loss=dict(type='MaskClassificationLoss', num_classes=3))
    old_cfg = dict(
        new_cfg,
        decode_head=dict(new_cfg['decode_head'], type='SAMMaskDecoderHead'))
    torch.manual_seed(0)
    new = MODELS.build(new_cfg)
    torch.manual_seed(0)
    old = MODELS.build(old_cfg)
    assert type(old.decode_head) is SAMMaskClassificationHead
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state)
    for key in new_state:
        assert torch.equal(new_state[key], old_state[key]), key


def test_heads_read_the_embedding_last_after_block_maps(tiny_sam_file):
    """With out_indices the SAM backbone returns block maps first and the
    embedding last; the heads read the last by default."""
    path, _ = tiny_sam_file
    cfg = tiny_model_cfg(
        path,
        num_classes=3,
        out_channels=3,
        loss=dict(type='MaskClassificationLoss', num_classes=3),
        num_queries=4)
    model = MODELS.build(cfg).eval()
    multi_cfg = copy.deepcopy(cfg)
    multi_cfg['backbone']['out_indices'] = (0, 1)
    multi = MODELS.build(multi_cfg).eval()
    multi.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        feats = multi.backbone(images)
        assert len(feats) == 3
        cls_a, masks_a = model.decode_head(model.backbone(images))
        cls_b, masks_b = multi.decode_head(feats)
    assert torch.equal(cls_a, cls_b) and torch.equal(masks_a, masks_b)


@pytest.mark.parametrize('head',
                         ['SAMMaskDecoderHead', 'SAMMaskClassificationHead'])
def test_heads_refuse_an_input_that_is_not_the_embedding(tiny_sam_file, head):
    path, _ = tiny_sam_file
    cfg = tiny_model_cfg(path)['decode_head']
    cfg.update(type=head, checkpoint=path, in_index=0)
    if head == 'SAMMaskClassificationHead':
        cfg.update(
            num_classes=3,
            out_channels=3,
            num_queries=4,
            loss_decode=dict(type='MaskClassificationLoss', num_classes=3))
    decode_head = MODELS.build(cfg)
    block_map = torch.zeros(1, 48, 8, 8)  # not embed_dim channels
    embedding = torch.zeros(1, 32, 8, 8)
    with pytest.raises(ValueError, match=r'in_index=0 of 2.*in_index=-1'):
        decode_head((block_map, embedding))
    for bad in (dict(in_index=[0, 1]), dict(input_transform='resize_concat')):
        with pytest.raises(ValueError, match='reads one image embedding'):
            MODELS.build(dict(cfg, **bad))
