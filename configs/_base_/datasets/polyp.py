# Polyp segmentation: trained on PraNet's Kvasir + CVC-ClinicDB split, tested
# on Kvasir, CVC-ClinicDB, CVC-ColonDB, ETIS-LaribPolypDB and CVC-300
# (EndoScene, "CVC-T"). See PolypDataset for the layouts; make this one with
# the image_mask_folders.py command in docs/own_data.md. Validation: a
# seeded random 10% of the training set (the paper's is not published).
dataset_type = 'PolypDataset'
data_root = 'data/polyp'
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
# One model, several test sets, one tools/test.py run: test_dataloader is
# the first set (what mmseg's tools and inferencers read), its extra_sets
# the others; MultiDatasetTestLoop (set by the recipe) evaluates them in
# turn and reports "<name>/<metric>", e.g. "Kvasir/Sm".
test_sets = (
    'Kvasir',
    'CVC-ClinicDB',
    'CVC-ColonDB',
    'ETIS-LaribPolypDB',
    'CVC-300',
)
test_dataloader = [
    dict(
        name=name,
        batch_size=1,
        num_workers=2,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix=dict(
                img_path=f'test/{name}/images',
                seg_map_path=f'test/{name}/masks'),
            pipeline=test_pipeline)) for name in test_sets
]
test_dataloader = dict(test_dataloader[0], extra_sets=test_dataloader[1:])
# S-measure, E-measure, weighted F with beta^2 = 0.3 (the Conv-LoRA paper's
# F_w^beta; the toolkits use 1) and MAE. Validation computes only what picks
# the checkpoint (Sm) and MAE, which is cheap.
val_evaluator = dict(type='SODMetric', sod_metrics=['Sm', 'MAE'], beta2=0.3)
test_evaluator = dict(type='SODMetric', beta2=0.3)
