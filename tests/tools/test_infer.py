"""tools/infer.py: masks in the dataset's encoding, probabilities and
overlays at the original size, for files, folders and globs."""
import copy
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_convlora.apis import InferencePipeline, get_test_pipeline
from mmseg_convlora.datasets.transforms.trans10k_loading import \
    decode_trans10k_mask
from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from helpers import load_tool, tiny_config

SIZES = {'a': (60, 90), 'sub/b': (100, 70), 'c': (128, 128)}


def infer_tool():
    return load_tool('infer.py')


class _Runner:

    def __init__(self, model):
        self.model = model
        self.cfg = dict(resume=False)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        path = root / 'folder' / f'{name}.jpg'
        path.parent.mkdir(parents=True, exist_ok=True)
        img = cv2.GaussianBlur(
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
        assert cv2.imwrite(str(path), img)
    return root


def trained(path, sam_file, tmp_path):
    cfg = tiny_config(path, sam_file)
    init_default_scope('mmseg')
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    ckpt = dict(state_dict=model.state_dict(), meta={})
    TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
    ckpt_path = str(tmp_path / 'trained.pth')
    torch.save(ckpt, ckpt_path)
    cfg_path = str(tmp_path / 'config.py')
    cfg.dump(cfg_path)
    return cfg, model, cfg_path, ckpt_path


def predict(model, cfg, path):
    data = InferencePipeline(get_test_pipeline(cfg))(path)
    with torch.no_grad():
        return model.test_step(
            dict(inputs=[data['inputs']],
                 data_samples=[data['data_samples']]))[0]


def test_binary_masks_probabilities_overlays(tiny_sam_file, images, tmp_path,
                                             capsys):
    cfg, model, cfg_path, ckpt = trained('configs/convlora/sbu.py',
                                         tiny_sam_file[0], tmp_path)
    out = str(tmp_path / 'out')
    folder = str(images / 'folder')
    # a folder (with a sub-folder) and a glob that finds a.jpg again
    infer_tool().main([
        cfg_path, ckpt, folder,
        osp.join(folder, 'a.*'), '--out', out, '--device', 'cpu'
    ])
    assert 'elapsed' in capsys.readouterr().out  # the progress bar
    for name, (h, w) in SIZES.items():
        sample = predict(model, cfg, osp.join(folder, name + '.jpg'))
        mask = cv2.imread(
            osp.join(out, 'masks', name + '.png'), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (h, w)
        np.testing.assert_array_equal(
            mask, sample.pred_sem_seg.data[0].numpy() * 255)
        prob = cv2.imread(
            osp.join(out, 'probs', name + '.png'), cv2.IMREAD_UNCHANGED)
        expected = (sample.seg_logits.data[0] * 255).round().numpy()
        np.testing.assert_array_equal(prob, expected.astype(np.uint8))
        vis = cv2.imread(osp.join(out, 'overlays', name + '.png'))
        assert vis.shape == (h, w, 3)
    assert sorted(os.listdir(osp.join(out,
                                      'masks'))) == ['a.png', 'c.png', 'sub']


def test_trans10k_v1_masks_in_its_colour_encoding(tiny_sam_file, images,
                                                  tmp_path):
    cfg, model, cfg_path, ckpt = trained(
        'configs/convlora/trans10k-v1_vit-b.py', tiny_sam_file[0], tmp_path)
    out = str(tmp_path / 'out')
    image = str(images / 'folder' / 'a.jpg')
    infer_tool().main([cfg_path, ckpt, image, '--out', out])
    sample = predict(model, cfg, image)
    mask = cv2.imread(osp.join(out, 'masks', 'a.png'))[..., ::-1]
    np.testing.assert_array_equal(
        decode_trans10k_mask(mask, 'v1'), sample.pred_sem_seg.data[0].numpy())
    scores = sample.seg_logits.data
    probs = scores / scores.sum(0)
    for c, name in enumerate(('background', 'things', 'stuff')):
        prob = cv2.imread(
            osp.join(out, 'probs', 'a', name + '.png'), cv2.IMREAD_UNCHANGED)
        expected = (probs[c] * 255).round().numpy()
        np.testing.assert_allclose(prob, expected, rtol=0, atol=1)


def test_inputs_that_match_nothing_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing_here'):
        infer_tool().find_images([str(tmp_path / 'nothing_here*.jpg')])
    (tmp_path / 'x').mkdir()
    (tmp_path / 'y').mkdir()
    for d in ('x', 'y'):
        cv2.imwrite(str(tmp_path / d / 'same.png'), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="both be written as 'same'"):
        infer_tool().find_images([
            str(tmp_path / 'x' / 'same.png'),
            str(tmp_path / 'y' / 'same.png')
        ])
