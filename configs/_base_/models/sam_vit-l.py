# SAM ViT-L (frozen) + prompt-free SAM mask decoder, binary output.
# Download the official weights to this path, or override it with
# --cfg-options model.sam_checkpoint=/path/to/sam_vit_l_0b3195.pth
sam_checkpoint = 'checkpoints/sam_vit_l_0b3195.pth'
crop_size = (1024, 1024)
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
    # adapter=dict(type='ConvLoRA'|'LoRA'|'CAD', ...) in method configs
    backbone=dict(type='SAMViT', arch='vit_l', img_size=1024),
    decode_head=dict(
        type='SAMMaskDecoderHead',
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        img_size=1024,
        # The Conv-LoRA reference's token sequence: the IoU token and one
        # mask token. True adds SAM's three multi-mask tokens (frozen), which
        # reproduces segment_anything's Sam(multimask_output=False).
        keep_sam_multimask_tokens=False,
        loss_decode=dict(type='StructureLoss')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
