# ade20k.py for SAM's fixed square input: training crops are padded
# to 512x512 by the data preprocessor (model.data_preprocessor.size); test
# images are resized so that their longer side is 512 (SAM's
# ResizeLongestSide) and padded to 512x512
# (model.data_preprocessor.test_cfg); the prediction is cropped back and
# resized to the original image for the metric.
_base_ = ['./ade20k.py']
sam_size = (512, 512)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=sam_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegLabels', num_classes=150),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
