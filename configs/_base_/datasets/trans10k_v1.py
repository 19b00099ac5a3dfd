# Trans10K v1 transparent objects; see Trans10KDataset for the layout and
# mask encoding (LoadTrans10KAnnotations refuses unknown colours/values).
dataset_type = 'Trans10KDataset'
data_root = 'data/Trans10K'
img_scale = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='LoadTrans10KAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadTrans10KAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    # fresh workers each epoch: --resume then repeats the random
    # augmentations exactly (persistent workers would restart them)
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        version='v1',
        split='train',
        data_root=data_root,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        version='v1',
        split='validation',
        data_root=data_root,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        version='v1',
        split='test',
        data_root=data_root,
        pipeline=test_pipeline))
val_evaluator = dict(type='MultiClassSegMetric')
test_evaluator = val_evaluator
