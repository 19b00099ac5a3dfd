# Multi-class CPU demo with no download: a tiny SAM with Conv-LoRA and the
# multi-class SAM decoder (mask tokens + classifier, Hungarian-matched mask
# classification loss) on synthetic squares (1) and discs (2). Generate first:
#   python tools/make_demo_data.py --task multiclass
#   python tools/train.py configs/demo/tiny_multiclass.py
_base_ = ['./tiny_shadow.py']
data_root = 'data/demo_multiclass'
num_classes = 3
metainfo = dict(
    classes=('background', 'square', 'disc'),
    palette=[[0, 0, 0], [255, 128, 0], [0, 128, 255]])
model = dict(
    sam_checkpoint=data_root + '/tiny_sam.pth',
    backbone=dict(adapter=dict(loss_weight=2.0)),
    decode_head=dict(
        type='SAMMaskClassificationHead',
        num_classes=num_classes,
        out_channels=num_classes,
        threshold=None,
        num_queries=6,
        loss_decode=dict(
            _delete_=True,
            type='MaskClassificationLoss',
            num_classes=num_classes,
            num_points=1024)))
train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(128, 128), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='Resize', scale=(128, 128), keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='MultiClassSegMetric')
test_evaluator = val_evaluator
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=max_epochs,
         by_epoch=True, convert_to_iter_based=True)
]
default_hooks = dict(
    checkpoint=dict(interval=10, save_best='mIoU', rule='greater'))
