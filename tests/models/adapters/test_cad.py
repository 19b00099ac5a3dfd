"""CAD: high-frequency components, the 6-channel input, the closed-form
forward, the 0.1 bound, no encoder graph, one optimizer step, bf16."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmseg_convlora  # noqa: F401
from mmseg_convlora.models.adapters import CAD, high_frequency_components
from helpers import TINY_EMBED_DIM, build_tiny_model, fake_batch

SIZE = 128
# Tiny CAD: 64 -> 32 -> 16 -> 8 = the tiny embedding grid, 32 channels.
TINY_CAD = dict(type='CAD', channels=TINY_EMBED_DIM, input_size=64)


def reference_hf(x, rate=0.25):
    """The reference behaviour in numpy: shift over all axes, as the
    published code calls fftshift without dims."""
    x = x.double().numpy()
    H, W = x.shape[-2:]
    line = int((H * W * rate)**.5 // 2)
    spec = np.fft.fftshift(np.fft.fft2(x, norm='forward'))
    mask = np.zeros(x.shape)
    mask[..., H // 2 - line:H // 2 + line, W // 2 - line:W // 2 + line] = 1
    spec = spec * (1 - mask)
    inv = np.fft.ifft2(np.fft.ifftshift(spec), norm='forward').real
    return torch.from_numpy(np.abs(inv)).float()


# ---------------------------------------------------------------------- #
def test_high_frequency_components():
    const = torch.full((2, 3, 64, 48), 200.0)
    hf = high_frequency_components(const)
    assert hf.shape == const.shape
    assert hf.abs().max() < 1e-3
    x = torch.rand(2, 3, 64, 64) * 255
    torch.testing.assert_close(
        high_frequency_components(x), reference_hf(x), rtol=1e-4, atol=1e-3)
    # 512 px: a 256 px square (25% of the spectrum) is removed. A cosine
    # just inside it vanishes, one just outside passes unchanged.
    i = torch.arange(512.).view(1, 1, 512, 1).expand(1, 1, 512, 512)
    low = torch.cos(2 * torch.pi * 127 * i / 512)
    high = torch.cos(2 * torch.pi * 129 * i / 512)
    assert high_frequency_components(low).abs().max() < 1e-4
    torch.testing.assert_close(
        high_frequency_components(high), high.abs(), rtol=0, atol=1e-4)


def test_adapter_input_six_channels_in_unit_range():
    cad = CAD(channels=8, input_size=32)
    img = torch.rand(2, 3, 64, 64) * 255
    inputs = (img - cad.mean) / cad.std
    x = cad.adapter_input(inputs)
    assert x.shape == (2, 6, 32, 32)
    assert x.min() >= 0 and x.max() <= 1
    rgb = F.interpolate(
        img, size=(32, 32), mode='bilinear', align_corners=False)
    torch.testing.assert_close(
        x[:, :3], rgb / (rgb.amax(dim=(2, 3), keepdim=True) + 1e-5))
    hf = reference_hf(rgb)
    torch.testing.assert_close(
        x[:, 3:],
        hf / (hf.amax(dim=(2, 3), keepdim=True) + 1e-5),
        rtol=1e-4,
        atol=1e-4)


def _samples_with_cad_images(images):
    from mmseg.structures import SegDataSample
    samples = []
    for image in images:
        sample = SegDataSample()
        sample.set_field(image, 'cad_image')
        samples.append(sample)
    return samples


def test_adapter_input_takes_the_image_the_pipeline_kept(monkeypatch):
    """With ``cad_image`` in the data samples (ResizeCADImage +
    PackCADInputs) the input is that image and its high-frequency
    components, each channel over its maximum + 1e-5; without, the network
    input downsampled (the fallback), with one warning."""
    cad = CAD(channels=8, input_size=32)
    g = torch.Generator().manual_seed(0)
    kept = torch.randint(
        0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    inputs = torch.randn(2, 3, 64, 64, generator=g)
    samples = _samples_with_cad_images(kept)
    x = cad.adapter_input(inputs, samples)
    rgb = kept.float()
    torch.testing.assert_close(
        x[:, :3],
        rgb / (rgb.amax(dim=(2, 3), keepdim=True) + 1e-5),
        rtol=0,
        atol=0)
    hf = reference_hf(rgb)
    torch.testing.assert_close(
        x[:, 3:],
        hf / (hf.amax(dim=(2, 3), keepdim=True) + 1e-5),
        rtol=1e-4,
        atol=1e-4)

    warnings = []
    monkeypatch.setattr('mmseg_convlora.models.adapters.cad.print_log',
                        lambda msg, **kwargs: warnings.append(msg))
    fallback = cad.adapter_input(inputs)
    assert not warnings  # a call without data samples: documented fallback
    bare = _samples_with_cad_images(kept)
    for sample in bare:
        del sample.cad_image
    torch.testing.assert_close(cad.adapter_input(inputs, bare), fallback)
    cad.adapter_input(inputs, bare)
    assert len(warnings) == 1 and 'ResizeCADImage' in warnings[0]
    assert not torch.allclose(fallback, x)


def test_kept_image_of_the_wrong_size_or_in_some_samples_only():
    cad = CAD(channels=8, input_size=32)
    inputs = torch.randn(2, 3, 64, 64)
    wrong = _samples_with_cad_images(
        torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match='ResizeCADImage size=32'):
        cad.adapter_input(inputs, wrong)
    some = _samples_with_cad_images(
        torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    del some[1].cad_image
    with pytest.raises(ValueError, match='Only 1 of 2'):
        cad.adapter_input(inputs, some)


def test_segmentor_hands_the_kept_image_to_cad(tiny_ckpt):
    """Through SAMSegmentor.loss/predict the kept image reaches CAD."""
    model = build_tiny_model(tiny_ckpt, TINY_CAD)
    cad = model.backbone.adapters[0]
    seen = []
    original = cad.input_image

    def spy(inputs, data_samples=None):
        image = original(inputs, data_samples)
        seen.append(image)
        return image

    cad.input_image = spy
    inputs, samples = fake_batch(2)
    kept = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    for sample, image in zip(samples, kept):
        sample.set_field(image, 'cad_image')
    model.loss(inputs, samples)
    model.eval()
    with torch.no_grad():
        model.predict(inputs, samples)
    assert len(seen) == 2
    for image in seen:
        assert torch.equal(image, kept.float())


def test_cad_matches_closed_form_and_is_bounded():
    torch.manual_seed(0)
    cad = CAD(channels=16, input_size=64)
    cad.train()
    inputs = torch.randn(2, 3, 96, 96)
    emb = torch.randn(2, 16, 8, 8)
    out = cad.forward_embedding(inputs, emb)

    x = cad.adapter_input(inputs)
    y = F.conv2d(x, cad.stem.weight, cad.stem.bias)
    acc = 0
    for blk in cad.blocks:
        t = F.conv2d(y, blk.conv.weight, blk.conv.bias, padding=2, dilation=2)
        t = F.batch_norm(
            t,
            None,
            None,
            blk.norm.weight,
            blk.norm.bias,
            training=True,
            eps=1e-5)
        y = F.avg_pool2d(F.leaky_relu(t, 0.1) + y, 2)
        acc = acc + F.adaptive_avg_pool2d(y, (8, 8))
    torch.testing.assert_close(out, emb + 0.1 * torch.tanh(acc))
    assert (out - emb).abs().max() <= 0.1

    # Saturated: still bounded by 0.1.
    with torch.no_grad():
        cad.stem.weight.mul_(1000)
        cad.stem.bias.fill_(50)
    delta = cad.forward_embedding(inputs, emb) - emb
    assert delta.abs().max() <= 0.1 + 1e-6
    assert delta.abs().max() > 0.099


def test_cad_init_and_parameters():
    cad = CAD()
    assert sum(p.numel() for p in cad.parameters()) == 1773568
    assert cad.stem.weight.shape == (256, 6, 1, 1)
    for blk in cad.blocks:
        assert blk.conv.dilation == (2, 2) and blk.conv.padding == (2, 2)
        assert torch.count_nonzero(blk.conv.bias) == 0
        assert torch.all(blk.norm.weight == 1)
        assert torch.count_nonzero(blk.norm.bias) == 0
        # kaiming normal, fan_out, relu: std = sqrt(2 / (256 * 9))
        assert blk.conv.weight.std().item() == pytest.approx(
            (2 / (256 * 9))**.5, rel=0.02)
    assert 'mean' not in cad.state_dict()
    syncbn = CAD(channels=8, input_size=16, norm_cfg=dict(type='SyncBN'))
    assert type(syncbn.blocks[0].norm).__name__ == 'SyncBatchNorm'


def test_cad_channel_mismatch_is_explained(tiny_ckpt):
    with pytest.raises(ValueError, match='channels=32'):
        build_tiny_model(tiny_ckpt, dict(type='CAD'))


def test_cad_keeps_no_encoder_graph(tiny_ckpt):
    model = build_tiny_model(tiny_ckpt, TINY_CAD)
    assert not model.backbone.needs_encoder_grad
    model.train()
    seen = {}
    enc = model.backbone.encoder
    enc.blocks[0].register_forward_hook(
        lambda m, a, o: seen.update(grad_enabled=torch.is_grad_enabled()))
    enc.neck.register_forward_hook(lambda m, a, o: seen.update(emb=o))
    loss, _ = model.parse_losses(model.loss(*fake_batch()))
    assert seen['grad_enabled'] is False
    assert not seen['emb'].requires_grad and seen['emb'].grad_fn is None
    loss.backward()
    assert all(p.grad is None for p in enc.parameters())
    cad = model.backbone.adapters[0]
    assert all(p.grad is not None for p in cad.parameters())


def test_cad_one_step_changes_only_intended_params(tiny_ckpt):
    torch.manual_seed(0)
    model = build_tiny_model(tiny_ckpt, TINY_CAD)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    cad_names = {n for n in trainable if n.startswith('backbone.')}
    assert cad_names and all(
        n.startswith('backbone.adapters.0.') for n in cad_names)
    assert sum(p.numel() for n, p in model.named_parameters()
               if n in cad_names) == sum(
                   p.numel() for p in model.backbone.adapters[0].parameters())
    stats = model.backbone.adapters[0].blocks[0].norm.running_mean.clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                            lr=1e-3)
    loss, _ = model.parse_losses(model.loss(*fake_batch()))
    loss.backward()
    opt.step()
    for n, p in model.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), n
    assert not torch.equal(
        model.backbone.adapters[0].blocks[0].norm.running_mean, stats)


def test_cad_bf16_autocast_forward_backward(tiny_ckpt):
    model = build_tiny_model(tiny_ckpt, TINY_CAD)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, _ = model.parse_losses(model.loss(*fake_batch()))
    loss.backward()
    grads = [p.grad for p in model.backbone.adapters[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model.backbone(torch.randn(1, 3, SIZE, SIZE))[0]
    assert torch.isfinite(out.float()).all()
