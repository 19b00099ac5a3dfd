# Shared by the binary datasets laid out as
# data_root/{train,val,test}/{images,masks} (what the converters in
# tools/dataset_converters/ write): the reference pipeline (1024x1024 square
# resize, flip p 0.5 for training) and the three dataloaders. A dataset
# config inherits this and sets its dataset type, data_root and metric.
dataset_type = 'BinarySegDataset'
data_root = 'data'
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
        data_prefix=dict(img_path='train/images', seg_map_path='train/masks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val/images', seg_map_path='val/masks'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='test/images', seg_map_path='test/masks'),
        pipeline=test_pipeline))
