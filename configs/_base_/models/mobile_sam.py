# MobileSAM: SAM's prompt encoder and mask decoder on a TinyViT-5M image
# encoder distilled from SAM ViT-H (Zhang et al. 2023), frozen; prompt-free
# SAM mask decoder, binary output. Get the weights (see
# docs/get_started.md, "SAM weights") to this path, or override it with
# --cfg-options model.sam_checkpoint=/path/to/mobile_sam.pt
# LoRA / Conv-LoRA on TinyViT target layers.<i>.blocks.<j>.attn.qkv.
sam_checkpoint = 'checkpoints/mobile_sam.pt'
crop_size = (1024, 1024)
tiny_vit_qkv = r'layers\.\d+\.blocks\.\d+\.attn\.qkv'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
model = dict(
    type='SAMSegmentor',
    sam_checkpoint=sam_checkpoint,
    data_preprocessor=data_preprocessor,
    # adapter=dict(type='ConvLoRA'|'LoRA', targets=tiny_vit_qkv, ...) or
    # dict(type='CAD') in method configs
    backbone=dict(type='SAMTinyViT', arch='mobile_sam', img_size=1024),
    decode_head=dict(
        type='SAMMaskDecoderHead',
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        img_size=1024,
        loss_decode=dict(type='StructureLoss')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
