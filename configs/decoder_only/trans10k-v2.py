# Trans10K v2 (12 classes), frozen SAM ViT-H, multi-class SAM decoder
# (10 mask tokens + classifier) trained with the mask-classification loss.
_base_ = ['../_base_/models/sam_vit-h.py', '../_base_/recipes/trans10k_v2.py']
num_classes = 12
model = dict(
    decode_head=dict(
        type='SAMMaskClassificationHead',
        num_classes=num_classes,
        out_channels=num_classes,
        threshold=None,
        num_queries=10,
        loss_decode=dict(
            type='MaskClassificationLoss', num_classes=num_classes)))
