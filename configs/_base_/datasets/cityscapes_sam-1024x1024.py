# cityscapes_1024x1024.py for SAM's square input at SAM's own 1024x1024:
# the 2048x1024 test images are resized to 1024x512 and padded to
# 1024x1024 (whole-image inference: SAM takes one square input, so
# mmseg's sliding window is not used; see ade20k_sam-512x512.py).
_base_ = ['./cityscapes_1024x1024.py']
sam_size = (1024, 1024)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=sam_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabels', num_classes=19),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
