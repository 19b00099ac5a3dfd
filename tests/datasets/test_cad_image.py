"""ResizeCADImage + PackCADInputs: CAD's input image is the original image
resized straight to its size (and flipped with the network input)."""
import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

import mmseg_convlora  # noqa: F401


@pytest.fixture
def image_file(tmp_path):
    """A 48 x 64 (H x W) BGR image with distinct channels and no symmetry."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, img)
    return path, img


def pipeline(flip_prob, cad=True):
    steps = [dict(type='LoadImageChecked')]
    if cad:
        steps.append(dict(type='ResizeCADImage', size=16))
    steps += [dict(type='Resize', scale=(32, 32), keep_ratio=False)]
    if flip_prob is not None:
        steps.append(
            dict(type='RandomFlip', prob=flip_prob, direction='horizontal'))
    steps.append(dict(type='PackCADInputs' if cad else 'PackSegInputs'))
    return Compose(steps)


@pytest.mark.parametrize('flip_prob', [None, 0.0, 1.0])
def test_cad_image_is_the_original_resized_straight(image_file, flip_prob):
    path, img = image_file
    out = pipeline(flip_prob)(dict(img_path=path))
    sample = out['data_samples']
    # written out: cv2 bilinear resize of the original to 16 x 16, BGR ->
    # RGB, flipped exactly when the network input was
    expected = cv2.resize(img, (16, 16), interpolation=cv2.INTER_LINEAR)
    expected = expected[..., ::-1]
    if flip_prob == 1.0:
        expected = expected[:, ::-1]
        assert sample.metainfo['flip']
    expected = torch.from_numpy(
        np.ascontiguousarray(expected.transpose(2, 0, 1)))
    assert sample.cad_image.dtype == torch.uint8
    assert torch.equal(sample.cad_image, expected)
    # the network input and the rest of the packing are PackSegInputs'
    plain = pipeline(flip_prob, cad=False)(dict(img_path=path))
    assert torch.equal(out['inputs'], plain['inputs'])
    assert sample.metainfo == plain['data_samples'].metainfo
    assert 'cad_image' not in plain['data_samples']


def test_kept_image_differs_from_the_downsampled_network_input(image_file):
    """The chain CAD used before: network input (1024 here 32) downsampled
    to 16. It is not the original resized straight to 16."""
    path, _ = image_file
    out = pipeline(None)(dict(img_path=path))
    network = out['inputs'].float()[None].flip(1)  # BGR -> RGB
    downsampled = torch.nn.functional.interpolate(
        network, size=(16, 16), mode='bilinear', align_corners=False)[0]
    kept = out['data_samples'].cad_image.float()
    assert (kept - downsampled).abs().mean() > 1.0


def test_misplaced_steps_are_explained(image_file):
    path, _ = image_file
    late = Compose([
        dict(type='LoadImageChecked'),
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='ResizeCADImage', size=16)
    ])
    with pytest.raises(ValueError, match='right after the image is loaded'):
        late(dict(img_path=path))
    missing = Compose(
        [dict(type='LoadImageChecked'),
         dict(type='PackCADInputs')])
    with pytest.raises(ValueError, match="type='ResizeCADImage'"):
        missing(dict(img_path=path))
    with pytest.raises(ValueError, match='positive int'):
        Compose([dict(type='ResizeCADImage', size=0)])


def test_vertical_flip_is_followed(image_file):
    path, img = image_file
    out = Compose([
        dict(type='LoadImageChecked'),
        dict(type='ResizeCADImage', size=16, to_rgb=False),
        dict(type='RandomFlip', prob=1.0, direction='vertical'),
        dict(type='PackCADInputs')
    ])(
        dict(img_path=path))
    expected = mmcv.imflip(mmcv.imresize(img, (16, 16)), 'vertical')
    assert torch.equal(out['data_samples'].cad_image,
                       torch.from_numpy(expected.transpose(2, 0, 1).copy()))
