"""tools/test.py --show-dir writes overlays through mmseg's visualiser for a
binary (demo shadow) and a multi-class (demo squares/discs) model.

The tools run in this process (their ``main(argv)``), which saves the
interpreter start and imports of a subprocess; each run gets its own
visualiser name because mmengine keeps visualisers as named singletons.
"""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_convlora  # noqa: F401
from helpers import REPO, demo_cfg_options, load_tool

pytestmark = pytest.mark.slow


def save_untrained(config, data_dir, path):
    """A checkpoint of the freshly built model (what --show-dir draws does
    not depend on training)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    cfg.model.sam_checkpoint = osp.join(data_dir, 'tiny_sam.pth')
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)


def dataset_palette(config):
    """The test set's class colours (RGB): the config's metainfo, else
    its dataset class's."""
    from mmseg.registry import DATASETS
    dataset = Config.fromfile(config).test_dataloader.dataset
    palette = (dataset.get('metainfo') or {}).get('palette')
    return palette or DATASETS.get(dataset.type).METAINFO['palette']


@pytest.mark.parametrize('task', ['shadow', 'multiclass'])
def test_show_dir_writes_overlays(task, demo_data, tmp_path):
    if task == 'shadow':
        config = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
        data = demo_data
    else:
        config = osp.join(REPO, 'configs', 'demo', 'tiny_multiclass.py')
        data = str(tmp_path / 'demo_multiclass')
        load_tool('make_demo_data.py').main(
            ['--task', 'multiclass', '--out', data, '--num-train', '4'])
    ckpt = str(tmp_path / 'model.pth')
    save_untrained(config, data, ckpt)
    show = str(tmp_path / 'show')
    load_tool('test.py').main([
        config, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--show-dir', show, '--cfg-options',
        f'visualizer.name=show_dir_{task}'
    ] + demo_cfg_options(data))
    pngs = sorted(glob.glob(osp.join(show, 'vis_data', 'vis_image', '*.png')))
    assert len(pngs) == 8  # every test image (interval 1)
    palette = np.array(dataset_palette(config))
    for png in pngs[:2]:
        drawn = cv2.imread(png)[..., ::-1]  # RGB, as drawn
        name = osp.basename(png)[len('test_'):-len('_0.png')]
        image = cv2.imread(osp.join(data, 'val', 'images', name))[..., ::-1]
        gt = cv2.imread(
            osp.join(data, 'val', 'masks',
                     osp.splitext(name)[0] + '.png'), cv2.IMREAD_GRAYSCALE)
        if task == 'shadow':
            gt = gt // 255
        assert len(np.unique(gt)) > 1
        h, w = image.shape[:2]
        # ground truth | prediction, each at the image's own size
        assert drawn.shape == (h, 2 * w, 3)
        # mmseg's visualiser blends every pixel with its class colour,
        # image (1 - alpha) + colour alpha (alpha 0.5, --show-alpha's
        # default), and writes the class names on top (a few pixels).
        blends = (image[None] * 0.5 + palette[:, None, None] * 0.5).astype(
            np.uint8)
        close = np.abs(blends.astype(int) - drawn[None, :, :w]).max(-1) <= 1
        on_gt = np.take_along_axis(close, gt[None], 0)[0]
        # (measured: 97-98 % of all pixels, 90-95 % of the foreground)
        assert on_gt.mean() > 0.95 and on_gt[gt > 0].mean() > 0.85
        # the prediction half: each pixel one of the classes' blends
        close = np.abs(blends.astype(int) - drawn[None, :, w:]).max(-1) <= 1
        assert close.any(0).mean() > 0.95
