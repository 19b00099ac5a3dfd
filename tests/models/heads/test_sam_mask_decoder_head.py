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
