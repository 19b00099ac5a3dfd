# pascal_voc12.py for SAM's fixed square input: test images resized to a
# longer side of 512 and padded to 512x512 (see ade20k_sam-512x512.py).
_base_ = ['./pascal_voc12.py']
sam_size = (512, 512)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=sam_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabels', num_classes=21),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
