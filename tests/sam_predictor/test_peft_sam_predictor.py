"""PEFTSamPredictor: SamPredictor's interface on a fine-tuned model."""
import copy

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from segment_anything import SamPredictor

from mmseg_convlora.apis import InferencePipeline, get_test_pipeline
from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from mmseg_convlora.sam_predictor import PEFTSamPredictor, SquareResize
from helpers import tiny_config

POINTS = np.array([[30.0, 40.0], [90.0, 20.0]])
LABELS = np.array([1, 0])
BOX = np.array([10.0, 5.0, 120.0, 80.0])


class _Runner:

    def __init__(self, model):
        self.model = model
        self.cfg = dict(resume=False)


def image(h=100, w=150, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def config_file(path, sam_file, tmp_path, **model_overrides):
    cfg = tiny_config(path, sam_file)
    cfg.merge_from_dict(model_overrides)
    out = str(tmp_path / 'config.py')
    cfg.dump(out)
    return cfg, out


def trained(cfg, tmp_path, seed=0):
    """Perturb the trainable weights, save them as training does."""
    init_default_scope('mmseg')
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    ckpt = dict(state_dict=model.state_dict(), meta={})
    TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
    path = str(tmp_path / 'trained.pth')
    torch.save(ckpt, path)
    return model, path


@pytest.mark.parametrize('decoder', ['original', 'finetuned'])
def test_equals_sam_predictor_on_an_unadapted_model(tiny_sam_file, tmp_path,
                                                    decoder):
    sam_file, sam = tiny_sam_file
    # SAM's own token sequence (all four mask tokens), as SamPredictor
    _, cfg_file = config_file(
        'configs/decoder_only/sbu_vit-b.py', sam_file, tmp_path,
        **{'model.decode_head.keep_sam_multimask_tokens': True})
    ours = PEFTSamPredictor(cfg_file, decoder=decoder, resize='longest_side')
    theirs = SamPredictor(sam)
    img = image()
    ours.set_image(img)
    theirs.set_image(img)
    torch.testing.assert_close(
        ours.features, theirs.features, rtol=0, atol=1e-6)
    for kwargs in (dict(point_coords=POINTS,
                        point_labels=LABELS), dict(box=BOX),
                   dict(
                       point_coords=POINTS[:1],
                       point_labels=LABELS[:1],
                       box=BOX)):
        for multimask in (True, False):
            a = ours.predict(
                multimask_output=multimask, return_logits=True, **kwargs)
            b = theirs.predict(
                multimask_output=multimask, return_logits=True, **kwargs)
            for x, y in zip(a, b):
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
    # mask prompts go through the same path too
    low_res = theirs.predict(box=BOX, multimask_output=False)[2]
    np.testing.assert_allclose(
        ours.predict(box=BOX, mask_input=low_res)[0],
        theirs.predict(box=BOX, mask_input=low_res)[0])


@pytest.mark.parametrize('path', [
    'configs/convlora/sbu.py', 'configs/lora/sbu.py', 'configs/cad/sbu.py',
    'configs/convlora_vpt/sbu.py', 'configs/sam_adapter/sbu.py'
])
@pytest.mark.parametrize('keep_tokens', [True, False])
def test_finetuned_decoder_without_prompts_is_the_segmentor(
        path, keep_tokens, tiny_sam_file, tmp_path):
    """No prompt: SAM's token 0 of the fine-tuned decoder is exactly the
    prompt-free head, on the adapted encoder's embedding."""
    cfg, cfg_file = config_file(
        path, tiny_sam_file[0], tmp_path,
        **{'model.decode_head.keep_sam_multimask_tokens': keep_tokens})
    model, ckpt = trained(cfg, tmp_path)
    predictor = PEFTSamPredictor(cfg_file, ckpt)
    img = image(128, 128)  # the input size: no resize on either side
    predictor.set_image(img)
    _, _, low_res = predictor.predict(
        multimask_output=False, return_logits=True)
    # the segmentor on the same image through the config's test pipeline
    # (CAD: with the image the pipeline keeps for it)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, img[..., ::-1])
    data = InferencePipeline(get_test_pipeline(cfg))(path)
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    with torch.no_grad():
        expected = model._forward(**batch)[0]
    assert low_res.shape == (1, 32, 32)
    torch.testing.assert_close(
        torch.from_numpy(low_res), expected, rtol=0, atol=2e-5)
    # and the weights that were loaded are the fine-tuned ones
    assert not torch.equal(
        predictor.model.mask_decoder.mask_tokens.weight[0],
        MODELS.build(copy.deepcopy(cfg.model)).decode_head.query_tokens[0])
    masks, scores, _ = predictor.predict(
        point_coords=POINTS, point_labels=LABELS, multimask_output=False)
    assert masks.shape == (1, 128, 128) and masks.dtype == bool
    if keep_tokens:
        masks, scores, _ = predictor.predict(
            point_coords=POINTS, point_labels=LABELS)
        assert masks.shape == (3, 128, 128) and scores.shape == (3, )
    else:
        with pytest.raises(ValueError, match='multimask_output=False'):
            predictor.predict(point_coords=POINTS, point_labels=LABELS)


def test_multiclass_model_needs_the_original_decoder(tiny_sam_file, tmp_path):
    cfg, cfg_file = config_file('configs/convlora/trans10k-v2_vit-b.py',
                                tiny_sam_file[0], tmp_path)
    _, ckpt = trained(cfg, tmp_path)
    with pytest.raises(ValueError, match="decoder='original'"):
        PEFTSamPredictor(cfg_file, ckpt)
    predictor = PEFTSamPredictor(cfg_file, ckpt, decoder='original')
    predictor.set_image(image())
    masks, scores, _ = predictor.predict(box=BOX)
    assert masks.shape == (3, 100, 150)


def test_square_resize_maps_prompts_like_the_image():
    resize = SquareResize(128)
    img = image(100, 200)
    assert resize.apply_image(img).shape == (128, 128, 3)
    coords = resize.apply_coords(
        np.array([[200.0, 100.0], [50.0, 25.0]]), (100, 200))
    np.testing.assert_allclose(coords, [[128.0, 128.0], [32.0, 32.0]])
    boxes = resize.apply_boxes(np.array([[0.0, 0.0, 100.0, 50.0]]), (100, 200))
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 64.0, 64.0]])
    torch.testing.assert_close(
        resize.apply_coords_torch(torch.tensor([[50.0, 25.0]]), (100, 200)),
        torch.tensor([[32.0, 32.0]]))


def test_square_predictor_on_a_non_square_image(tiny_sam_file, tmp_path):
    _, cfg_file = config_file('configs/convlora/sbu.py', tiny_sam_file[0],
                              tmp_path)
    predictor = PEFTSamPredictor(cfg_file)
    predictor.set_image(image(100, 200))
    assert predictor.input_size == (128, 128)
    masks, _, _ = predictor.predict(
        box=np.array([0, 0, 100, 50]), multimask_output=False)
    assert masks.shape == (1, 100, 200)
