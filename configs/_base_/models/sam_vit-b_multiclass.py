# SAM ViT-B (frozen) + the multi-class SAM decoder for mmseg's datasets:
# N = 100 mask tokens, each with a class (K + 1 logits, "no object" last),
# trained with the Hungarian-matched mask-classification loss; the
# prediction sums class probability x mask probability over the tokens.
# Leaf configs set num_classes, img_size and the data preprocessor's size.
# Download the official weights to this path, or override it with
# --cfg-options model.sam_checkpoint=/path/to/sam_vit_b_01ec64.pth
sam_checkpoint = 'checkpoints/sam_vit_b_01ec64.pth'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='SAMSegmentor',
    sam_checkpoint=sam_checkpoint,
    data_preprocessor=data_preprocessor,
    backbone=dict(type='SAMViT', arch='vit_b'),
    decode_head=dict(
        type='SAMMaskClassificationHead',
        num_queries=100,
        threshold=None,
        loss_decode=dict(type='MaskClassificationLoss')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
