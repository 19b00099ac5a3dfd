"""SAMSegmentor: the data samples' path to the backbone, whole inference."""
import pytest
import torch
from mmseg.registry import MODELS

from mmseg_convlora.testing import fake_batch, tiny_model_cfg


def _recording_backbone(model):
    """Replace the backbone's forward by one that records its samples."""
    seen = []
    forward = model.backbone.forward

    def record(x, data_samples=None):
        seen.append(data_samples)
        return forward(x, data_samples)

    model.backbone.forward = record
    return seen


def test_data_samples_reach_the_backbone_in_every_mode(tiny_sam_file):
    model = MODELS.build(tiny_model_cfg(tiny_sam_file[0]))
    assert model.backbone_reads_samples
    seen = _recording_backbone(model)
    inputs, samples = fake_batch(2)
    model.loss(inputs, samples)
    model.eval()
    with torch.no_grad():
        model.predict(inputs, samples)
        model._forward(inputs, samples)
        model.predict(inputs)
    assert [s is samples for s in seen[:3]] == [True, True, True]
    assert seen[3] is None


def test_backbones_without_data_samples_get_only_the_images(tiny_sam_file):
    model = MODELS.build(tiny_model_cfg(tiny_sam_file[0]))
    backbone = model.backbone
    calls = []

    def images_only(x):
        calls.append(x.shape)
        return type(backbone).forward(backbone, x)

    backbone.forward = images_only
    model.backbone_reads_samples = False
    inputs, samples = fake_batch(1)
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, samples)
    assert calls == [inputs.shape] and len(out) == 1


def test_slide_inference_is_refused(tiny_sam_file):
    cfg = tiny_model_cfg(tiny_sam_file[0])
    cfg['test_cfg'] = dict(mode='slide', crop_size=(64, 64),
                           stride=(32, 32))
    with pytest.raises(ValueError, match="mode='whole'"):
        MODELS.build(cfg)
