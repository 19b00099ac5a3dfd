# Kvasir-SEG + CVC-ClinicDB polyps (the Conv-LoRA paper's polyp training
# sets), from a folder pair per source converted with
#   python tools/dataset_converters/image_mask_folders.py \
#       Kvasir=SRC/Kvasir-SEG CVC-ClinicDB=SRC/CVC-ClinicDB \
#       --out data/kvasir_cvc
# (seeded per-source split: 70% train and 10% val, pooled; 20% test, kept
# per source). Trained on both training parts; Kvasir and CVC-ClinicDB are
# tested separately in one tools/test.py run. Images are used at 256x256
# (the size of the public 256-px copy this recipe was measured on).
dataset_type = 'PolypDataset'
data_root = 'data/kvasir_cvc'
img_scale = (256, 256)
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
    dict(type='LoadBinaryAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
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
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val/images', seg_map_path='val/masks'),
        pipeline=test_pipeline))
test_sets = ('Kvasir', 'CVC-ClinicDB')
test_dataloader = [
    dict(
        name=name,
        batch_size=4,
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
# S-measure, E-measure, weighted F (beta^2 = 1, the toolkits'), MAE, and
# Dice / IoU per image at probability 0.5.
val_evaluator = dict(type='SODMetric', sod_metrics=['Sm', 'MAE'])
test_evaluator = [
    dict(type='SODMetric', beta2=1.0),
    dict(type='BinarySegMetric'),
]
