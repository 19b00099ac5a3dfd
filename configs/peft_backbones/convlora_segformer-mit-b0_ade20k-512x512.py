# Conv-LoRA on the q, k and v projections of a frozen SegFormer MiT-B0
# (ImageNet weights from mmseg) with mmseg's SegformerHead, ADE20K 512x512
# (150 classes), 80k iterations, whole-image inference as mmseg's SegFormer.
# Conv-LoRA reads each projection's token grid from the backbone as it runs
# (k and v: the grid after the spatial-reduction conv).
_base_ = [
    '../_base_/datasets/ade20k.py', '../_base_/schedules/schedule_80k.py'
]
num_classes = 150
# mmseg's MiT-B0 ImageNet weights (downloaded by mmengine on first use; or
# a local copy: --cfg-options model.backbone.backbone.init_cfg.checkpoint=)
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b0_20220624-7e0fe6dd.pth'  # noqa
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
            type='MixVisionTransformer',
            in_channels=3,
            embed_dims=32,
            num_stages=4,
            num_layers=[2, 2, 2, 2],
            num_heads=[1, 2, 5, 8],
            patch_sizes=[7, 3, 3, 3],
            sr_ratios=[8, 4, 2, 1],
            out_indices=(0, 1, 2, 3),
            mlp_ratio=4,
            qkv_bias=True,
            drop_rate=0.0,
            attn_drop_rate=0.0,
            drop_path_rate=0.1,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
        adapter=dict(
            type='ConvLoRA',
            rank=3,
            alpha=32,
            num_experts=8,
            targets=r'layers\.\d+\.1\.\d+\.attn\.attn\.(q|k|v)_proj')),
    decode_head=dict(
        type='SegformerHead',
        in_channels=[32, 64, 160, 256],
        in_index=[0, 1, 2, 3],
        channels=256,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
