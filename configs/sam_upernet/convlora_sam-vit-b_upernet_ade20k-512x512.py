# Conv-LoRA on a frozen SAM ViT-B at 512x512 whose blocks 3, 6, 9 and 12
# feed mmseg's MultiLevelNeck + UPerHead (and an FCNHead auxiliary head), as
# mmseg's ViT-B UPerNet, on ADE20K (150 classes), 80k iterations. SAM's neck
# and mask decoder are not used (out_embedding=False).
_base_ = [
    '../_base_/datasets/ade20k_sam-512x512.py',
    '../_base_/schedules/schedule_80k.py'
]
num_classes = 150
# Download the official weights to this path, or override it with
# --cfg-options model.sam_checkpoint=/path/to/sam_vit_b_01ec64.pth
sam_checkpoint = 'checkpoints/sam_vit_b_01ec64.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='SAMSegmentor',
    sam_checkpoint=sam_checkpoint,
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size={{_base_.sam_size}},
        test_cfg=dict(size={{_base_.sam_size}})),
    backbone=dict(
        type='SAMViT',
        arch='vit_b',
        img_size=512,
        out_indices=(2, 5, 8, 11),
        out_embedding=False,
        adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[768, 768, 768, 768],
        out_channels=768,
        scales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=3,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
