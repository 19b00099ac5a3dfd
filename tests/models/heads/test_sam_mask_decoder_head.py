import pytest
import torch

from mmseg.registry import MODELS
from mmseg_convlora.testing import tiny_model_cfg


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
    path, sam = tiny_sam_file
    model = MODELS.build(tiny_model_cfg(path)).eval()
    images = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        ours = model.decode_head(model.backbone(images))
    ref = sam_reference_logits(sam, images)
    assert ours.shape == ref.shape == (3, 1, 32, 32)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_dropping_sam_tokens_changes_output_not_count(tiny_sam_file):
    path, _ = tiny_sam_file
    keep = MODELS.build(tiny_model_cfg(path)).eval()
    drop = MODELS.build(
        tiny_model_cfg(path, keep_sam_multimask_tokens=False)).eval()
    assert keep.parameter_counts()['trainable'] == \
        drop.parameter_counts()['trainable']
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        a = keep.decode_head(keep.backbone(x))
        b = drop.decode_head(drop.backbone(x))
    assert not torch.allclose(a, b)


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
            type='SAMMaskDecoderHead', num_classes=num_classes,
            out_channels=num_classes, threshold=None,
            num_queries=num_queries,
            loss_decode=dict(type='MaskClassificationLoss',
                             num_classes=num_classes)))
    with torch.device('meta'):
        model = MODELS.build(cfg)
    expected = 3_505_536 + 256 * (num_queries - 1) + 257 * (num_classes + 1)
    assert decoder_trainable_formula(num_queries, num_classes) == expected
    assert model.parameter_counts()['trainable'] == expected


def test_multiclass_head_outputs_and_semantic_inference(tiny_sam_file):
    from mmseg_convlora.testing import tiny_model_cfg
    cfg = tiny_model_cfg(
        tiny_sam_file[0], num_classes=3, out_channels=3, threshold=None,
        num_queries=5,
        loss=dict(type='MaskClassificationLoss', num_classes=3,
                  num_points=256))
    model = MODELS.build(cfg).eval()
    head = model.decode_head
    # every query starts as SAM's token 0
    sam_token0 = tiny_sam_file[1].mask_decoder.mask_tokens.weight[0]
    for q in range(5):
        torch.testing.assert_close(head.query_tokens[q], sam_token0)
    with torch.no_grad():
        cls_logits, mask_logits = head(model.backbone(
            torch.randn(2, 3, 128, 128)))
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
