# A CPU demo that needs no download: a tiny SAM (random weights, official
# checkpoint layout) on a synthetic shadow dataset. tools/train.py and
# tools/test.py build both when they are missing (demo_data below), which
# tools/make_demo_data.py also does:
#   python tools/train.py configs/demo/tiny_shadow.py
_base_ = [
    '../_base_/datasets/sbu.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_10e.py'
]
data_root = 'data/demo_shadow'
# tools/train.py and tools/test.py generate a missing demo dataset / SAM
demo_data = dict(task='shadow')
img_scale = (128, 128)
tiny_encoder = dict(
    embed_dim=32,
    depth=2,
    num_heads=2,
    global_attn_indexes=(1, ),
    window_size=4)
model = dict(
    type='SAMSegmentor',
    sam_checkpoint=data_root + '/tiny_sam.pth',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=img_scale),
    backbone=dict(
        type='SAMViT',
        arch=tiny_encoder,
        img_size=128,
        out_channels=32,
        adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)),
    decode_head=dict(
        type='SAMMaskDecoderHead',
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        img_size=128,
        embed_dim=32,
        decoder=dict(depth=2, mlp_dim=64, num_heads=2, iou_head_hidden_dim=32),
        loss_decode=dict(type='BalancedBCELoss')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='LoadBinaryAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadBinaryAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='SBUShadowDataset',
        data_root=data_root,
        data_prefix=dict(img_path='train/images', seg_map_path='train/masks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='SBUShadowDataset',
        data_root=data_root,
        data_prefix=dict(img_path='val/images', seg_map_path='val/masks'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BERMetric')
test_evaluator = val_evaluator

max_epochs = 10
optim_wrapper = dict(optimizer=dict(lr=3e-3), accumulative_counts=1)
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(interval=5, save_best='BER', rule='less'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
