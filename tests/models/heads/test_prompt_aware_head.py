"""Prompt-aware training of the binary SAM head (``prompt_sampler``)."""
import copy
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import MODELS
from segment_anything import SamPredictor

from helpers import REPO, fake_batch, tiny_model_cfg

SAMPLER = dict(type='GTPromptSampler', prob=1.0)
BOX = dict(boxes=torch.tensor([10., 20., 90., 70.]))
POINTS = dict(
    point_coords=torch.tensor([[40., 30.], [100., 110.]]),
    point_labels=torch.tensor([1, 0]))
ONE_POINT = dict(
    point_coords=torch.tensor([[64., 5.]]), point_labels=torch.tensor([1]))


def build(path, **head):
    return MODELS.build(tiny_model_cfg(path, **head))


def test_prompts_decode_as_segment_anything(tiny_sam_file):
    """With SAM's token sequence, a prompted image gives SamPredictor's
    single-mask logits for the same coordinates (x first, the input frame),
    an image without a prompt the prompt-free ones, in one batch."""
    path, sam = tiny_sam_file
    model = build(path, keep_sam_multimask_tokens=True).eval()
    predictor = SamPredictor(sam)
    rng = np.random.default_rng(0)
    features, expected = [], []
    for prompt in (BOX, None, POINTS, ONE_POINT, None):
        predictor.set_image(rng.integers(0, 256, (128, 128, 3), np.uint8))
        kwargs = {} if prompt is None else {
            'box' if k == 'boxes' else k: v.numpy()
            for k, v in prompt.items()
        }
        logits = predictor.predict(
            multimask_output=False, return_logits=True, **kwargs)[2]
        features.append(predictor.features)
        expected.append(torch.from_numpy(logits))
    with torch.no_grad():
        ours = model.decode_head([torch.cat(features)],
                                 [BOX, None, POINTS, ONE_POINT, None])
    torch.testing.assert_close(
        ours[:, 0], torch.stack(expected)[:, 0], atol=1e-5, rtol=1e-5)


def grads_after_loss(model, seed=0):
    inputs, samples = fake_batch(n=3, seed=seed)
    torch.manual_seed(seed)
    loss_sum(model.loss(inputs, samples)).backward()
    return {n: p.grad for n, p in model.named_parameters()}


def test_gradients_reach_what_trains_and_not_the_prompt_encoder(tiny_ckpt):
    lora = dict(type='LoRA', rank=2)
    grads = grads_after_loss(
        build(tiny_ckpt, adapter=lora, prompt_sampler=SAMPLER))
    free = build(tiny_ckpt, adapter=lora)
    trainable = {n for n, p in free.named_parameters() if p.requires_grad}
    # the same parameters as without prompts, all of them
    assert {n for n, g in grads.items() if g is not None} == trainable
    assert any('lora' in n for n in trainable)
    assert not any('prompt_encoder' in n for n in trainable)
    decoder = [n for n in trainable if n.startswith('decode_head.')]
    assert 'decode_head.query_tokens' in decoder
    assert all(grads[n].abs().sum() > 0 for n in decoder)


def loss_sum(losses):
    return sum(v for k, v in losses.items() if 'loss' in k)


def test_prompts_change_training_only(tiny_ckpt):
    torch.manual_seed(0)
    free = build(tiny_ckpt)
    never = build(tiny_ckpt, prompt_sampler=dict(SAMPLER, prob=0.0))
    always = build(tiny_ckpt, prompt_sampler=SAMPLER)
    for m in (never, always):
        m.load_state_dict(free.state_dict())
    inputs, samples = fake_batch(n=2)
    free_, never_, always_ = (
        loss_sum(m.loss(inputs, samples)) for m in (free, never, always))
    assert torch.equal(free_, never_) and not torch.equal(free_, always_)
    with torch.no_grad():
        preds = [
            m.eval().predict(inputs, copy.deepcopy(samples))
            for m in (free, always)
        ]
    for a, b in zip(*preds):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)


def test_ground_truth_off_the_decoder_frame_is_refused(tiny_ckpt):
    model = build(tiny_ckpt, prompt_sampler=SAMPLER)
    _, samples = fake_batch(n=1, size=64)
    with pytest.raises(ValueError, match="decoder's input frame"):
        model.decode_head.loss([torch.zeros(1, 32, 8, 8)], samples, {})


def test_multi_class_head_refuses_prompts(tiny_ckpt):
    with pytest.raises(ValueError, match='no prompt-aware training'):
        build(
            tiny_ckpt,
            num_classes=3,
            out_channels=3,
            loss=dict(type='MaskClassificationLoss', num_classes=3),
            prompt_sampler=SAMPLER)


@pytest.mark.parametrize('method', ['decoder_only', 'lora', 'convlora'])
def test_prompt_aware_configs_add_only_the_sampler(method):
    base = Config.fromfile(
        osp.join(REPO, 'configs', method, 'kvasir-cvc_mobile-sam.py'))
    ours = Config.fromfile(
        osp.join(REPO, 'configs', method,
                 'kvasir-cvc_mobile-sam_prompt-aware.py'))
    sampler = ours.model.decode_head.pop('prompt_sampler')
    assert sampler == dict(type='GTPromptSampler', prob=0.5)
    assert 'prompt_sampler' not in base.model.decode_head
    assert ours.to_dict() == base.to_dict()


@pytest.mark.slow
def test_resume_is_exact_with_prompts(iter_config, tmp_path):
    """Prompts come from torch's global generator, which ExactResumeHook
    saves: resumed at iteration 2, training ends as the uninterrupted run.
    """

    def cfg(work, **kw):
        c = iter_config(work, adapter=None, keep=2, **kw)
        c.model.decode_head.prompt_sampler = SAMPLER
        c.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
        return c

    full = Runner.from_cfg(cfg(tmp_path / 'full'))
    full.train()
    resumed_cfg = cfg(tmp_path / 'resumed')
    resumed_cfg.load_from = str(tmp_path / 'full' / 'iter_2.pth')
    resumed_cfg.resume = True
    resumed = Runner.from_cfg(resumed_cfg)
    resumed.train()
    assert resumed.iter == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
