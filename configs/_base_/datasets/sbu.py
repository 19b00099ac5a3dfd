# SBU shadow detection; see SBUShadowDataset for the folder layout.
dataset_type = 'SBUShadowDataset'
data_root = 'data/SBU'
img_scale = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='LoadBinaryAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    # after Resize: metrics compare against the mask at its own resolution
    dict(type='LoadBinaryAnnotations'),
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
        data_root=data_root,
        data_prefix=dict(
            img_path='SBUTrain4KRecoveredSmall/ShadowImages',
            seg_map_path='SBUTrain4KRecoveredSmall/ShadowMasks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='SBU-Test/ShadowImages',
            seg_map_path='SBU-Test/ShadowMasks'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BERMetric')
test_evaluator = val_evaluator
