"""Each composition with mmseg trains through tools/train.py and is
evaluated by tools/test.py, on a fake dataset in mmseg's layout.

The configs are the shipped ones with the model shrunk (tiny SAM, tiny
MiT/ViT, narrow heads), the images and crops scaled down, and two
iterations; datasets, transforms, heads, losses and IoUMetric are the
configs' own.
"""
import copy
import glob
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.apis import inference_model, init_model

from helpers import REPO, TINY_DECODER, TINY_EMBED_DIM, TINY_ENCODER, run_tool

pytestmark = pytest.mark.slow


def write_fake_dataset(kind, root, num_classes):
    """Random images and label maps where mmseg's dataset class looks.

    ADE20K labels are 0 ("other", ignored after reduce_zero_label) and
    1..150; VOC and Cityscapes labels are class ids plus a border of 255.
    """
    rng = np.random.default_rng(0)
    h, w = (64, 128) if kind == 'cityscapes' else (96, 128)
    for split, count in (('train', 4), ('val', 2)):
        names = []
        for i in range(count):
            img = rng.integers(0, 255, (h, w, 3), np.uint8)
            ids = rng.choice(num_classes, 3, replace=False)
            seg = np.full((h, w), ids[0], np.uint8)
            seg[:, w // 3:] = ids[1]
            seg[h // 2:, w // 2:] = ids[2]
            if kind == 'ade20k':
                seg = seg + 1  # class c is stored as c + 1
                seg[:4] = 0
            else:
                seg[:2] = 255
            if kind == 'ade20k':
                sub = 'training' if split == 'train' else 'validation'
                img_path = f'images/{sub}/ADE_{split}_{i:08d}.jpg'
                seg_path = f'annotations/{sub}/ADE_{split}_{i:08d}.png'
            elif kind == 'voc':
                name = f'2007_{split}{i:04d}'
                names.append(name)
                img_path = f'JPEGImages/{name}.jpg'
                seg_path = f'SegmentationClass/{name}.png'
            else:
                stem = f'{split}/aachen/aachen_{i:06d}_000019'
                img_path = f'leftImg8bit/{stem}_leftImg8bit.png'
                seg_path = f'gtFine/{stem}_gtFine_labelTrainIds.png'
            for rel, array in ((img_path, img), (seg_path, seg)):
                path = osp.join(root, rel)
                os.makedirs(osp.dirname(path), exist_ok=True)
                assert cv2.imwrite(path, array)
        if kind == 'voc':
            split_file = osp.join(root, 'ImageSets', 'Segmentation',
                                  f'{split}.txt')
            os.makedirs(osp.dirname(split_file), exist_ok=True)
            with open(split_file, 'w') as f:
                f.write('\n'.join(names) + '\n')


def scaled(value, factor):
    return tuple(int(v) // factor for v in value)


def shrink_pipeline(pipeline, factor):
    """The same transforms with their sizes divided by ``factor``."""
    out = []
    for t in copy.deepcopy(pipeline):
        if t['type'] in ('RandomResize', 'Resize'):
            t['scale'] = scaled(t['scale'], factor)
        if t['type'] == 'RandomCrop':
            t['crop_size'] = scaled(t['crop_size'], factor)
        out.append(t)
    return out


TINY_MIT = dict(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
TINY_VIT = dict(
    img_size=(64, 64),
    embed_dims=16,
    num_layers=4,
    num_heads=2,
    out_indices=(0, 1, 2, 3))


def tiny_sam(cfg, checkpoint, size):
    model = cfg.model
    model.sam_checkpoint = checkpoint
    model.backbone.update(
        arch=copy.deepcopy(TINY_ENCODER),
        img_size=size,
        out_channels=TINY_EMBED_DIM)
    if model.decode_head.type == 'SAMMaskClassificationHead':
        model.decode_head.update(
            img_size=size,
            embed_dim=TINY_EMBED_DIM,
            decoder=copy.deepcopy(TINY_DECODER))
        model.decode_head.loss_decode.num_points = 256
    else:  # blocks 0 and 1 of the tiny ViT -> UPerNet
        model.backbone.out_indices = (0, 1)
        model.neck.update(in_channels=[32, 32], out_channels=16, scales=[2, 1])
        model.decode_head.update(
            in_channels=[16, 16],
            in_index=[0, 1],
            pool_scales=(1, 2),
            channels=16)
        model.auxiliary_head.update(in_channels=16, in_index=1, channels=8)


def tiny_peft(cfg):
    model = cfg.model
    inner = model.backbone.backbone
    inner.init_cfg = None  # no download
    if inner.type == 'MixVisionTransformer':
        inner.update(TINY_MIT)
        model.decode_head.update(in_channels=[8, 8, 16, 16], channels=16)
    else:
        inner.update(TINY_VIT)
        model.neck.update(in_channels=[16] * 4, out_channels=16)
        model.decode_head.update(in_channels=[16] * 4, channels=16)
        model.auxiliary_head.update(in_channels=16, channels=8)


# config, dataset kind, number of classes, size factor
COMPOSITIONS = {
    'sam_upernet/convlora_sam-vit-b_upernet_ade20k-512x512.py':
    ('ade20k', 150, 4),
    'sam_multiclass/convlora_sam-vit-b_ade20k-512x512.py': ('ade20k', 150, 4),
    'sam_multiclass/convlora_sam-vit-b_voc12-512x512.py': ('voc', 21, 4),
    'sam_multiclass/convlora_sam-vit-b_cityscapes-1024x1024.py':
    ('cityscapes', 19, 8),
    'peft_backbones/convlora_segformer-mit-b0_ade20k-512x512.py':
    ('ade20k', 150, 8),
    'peft_backbones/lora_vit-b16_upernet_ade20k-512x512.py':
    ('ade20k', 150, 8),
}


def tiny_config(name, data_root, tiny_sam_path, work):
    kind, _, factor = COMPOSITIONS[name]
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    preprocessor = cfg.model.data_preprocessor
    preprocessor.size = scaled(preprocessor.size, factor)
    if preprocessor.get('test_cfg'):
        preprocessor.test_cfg.size = preprocessor.size
    if cfg.model.backbone.type == 'PEFTBackbone':
        tiny_peft(cfg)
    else:
        tiny_sam(cfg, tiny_sam_path, preprocessor.size[0])
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = data_root
        loader.dataset.pipeline = shrink_pipeline(loader.dataset.pipeline,
                                                  factor)
    # what mmseg's inference_model reads
    cfg.test_pipeline = shrink_pipeline(cfg.test_pipeline, factor)
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [
        dict(
            type='PolyLR',
            power=1.0,
            eta_min=0.0,
            begin=0,
            end=2,
            by_epoch=False)
    ]
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work
    path = osp.join(work, 'tiny.py')
    os.makedirs(work, exist_ok=True)
    cfg.dump(path)
    return path


@pytest.mark.parametrize('name', sorted(COMPOSITIONS))
def test_train_and_test_tools(name, tiny_sam_file, tmp_path):
    kind, num_classes, _ = COMPOSITIONS[name]
    data_root = str(tmp_path / 'data')
    write_fake_dataset(kind, data_root, num_classes)
    work = str(tmp_path / 'work')
    cfg_path = tiny_config(name, data_root, tiny_sam_file[0], work)
    train = run_tool(['tools/train.py', cfg_path, '--work-dir', work])
    assert train.returncode == 0, train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert ('loss_moe' in log) == ('convlora' in name)
    assert 'mIoU' in log
    best = glob.glob(osp.join(work, 'best_mIoU_iter_2.pth'))
    assert len(best) == 1, os.listdir(work)
    # trainable weights only: no frozen backbone weight is saved
    state = torch.load(
        best[0], map_location='cpu', weights_only=False)['state_dict']
    frozen = [
        k for k in state if k.startswith('backbone.')
        and not re.search(r'lora_[AB]|w_gate|w_noise|\.experts\.', k)
    ]
    assert not frozen, frozen[:5]
    test = run_tool([
        'tools/test.py', cfg_path, best[0], '--work-dir',
        str(tmp_path / 'test')
    ])
    assert test.returncode == 0, test.stderr[-3000:]
    out = test.stdout + test.stderr
    assert 'per class results' in out
    miou = re.findall(r'mIoU: ([0-9.]+)', out)
    assert len(miou) == 1 and 0 <= float(miou[0]) <= 100
    # mmseg's own inference API on the config and trainable-only checkpoint
    model = init_model(cfg_path, best[0], device='cpu')
    image = sorted(
        glob.glob(osp.join(data_root, '**', '*.jpg'), recursive=True) +
        glob.glob(
            osp.join(data_root, 'leftImg8bit', '**', '*.png'), recursive=True)
    )[0]
    result = inference_model(model, image)
    height, width = cv2.imread(image).shape[:2]
    assert result.pred_sem_seg.shape == (height, width)
    probs = result.seg_logits.data
    assert probs.shape == (num_classes, height, width)
    assert result.pred_sem_seg.data.max() < num_classes
