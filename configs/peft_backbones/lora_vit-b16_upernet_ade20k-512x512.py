# LoRA on the q and v projections of a frozen ViT-B/16 (mmseg's
# VisionTransformer; the ImageNet weights of mmseg's ViT-B UPerNet configs)
# with mmseg's MultiLevelNeck + UPerHead and an FCNHead auxiliary head,
# ADE20K 512x512 (150 classes), 80k iterations, mmseg's ADE20K settings.
# mmseg's ViT attention is nn.MultiheadAttention, whose projections are
# never called as layers; PEFTBackbone swaps it for the numerically equal
# LinearMultiheadAttention (q_proj, k_proj, v_proj, out_proj) to adapt.
_base_ = [
    '../_base_/datasets/ade20k.py', '../_base_/schedules/schedule_80k.py'
]
num_classes = 150
# timm's ViT-B/16 converted with mmseg's
# tools/model_converters/vit2mmseg.py, as in mmseg's ViT UPerNet configs
checkpoint = 'pretrain/vit_base_patch16_224.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='SAMSegmentor',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size={{_base_.crop_size}}),
    backbone=dict(
        type='PEFTBackbone',
        backbone=dict(
            type='VisionTransformer',
            img_size=(512, 512),
            patch_size=16,
            in_channels=3,
            embed_dims=768,
            num_layers=12,
            num_heads=12,
            mlp_ratio=4,
            out_indices=(2, 5, 8, 11),
            qkv_bias=True,
            drop_rate=0.0,
            attn_drop_rate=0.0,
            drop_path_rate=0.0,
            with_cls_token=True,
            norm_cfg=dict(type='LN', eps=1e-6),
            act_cfg=dict(type='GELU'),
            norm_eval=False,
            interpolate_mode='bicubic',
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
        adapter=dict(
            type='LoRA',
            rank=3,
            alpha=32,
            targets=r'layers\.\d+\.attn\.attn\.(q|v)_proj')),
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
