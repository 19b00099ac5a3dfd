# Your own dataset on a CPU: a folder of images with binary masks,
# Conv-LoRA on MobileSAM at 256x256 (SAM ViT-B at 1024 px:
# binary_dataset.py). Get checkpoints/mobile_sam.pt (docs/get_started.md),
# copy this file (e.g. to configs/custom/my_dataset.py), edit the block
# below, then:
#   python tools/train.py configs/custom/my_dataset.py --trial 2  # a check
#   python tools/train.py configs/custom/my_dataset.py
#   python tools/test.py configs/custom/my_dataset.py \
#       work_dirs/my_dataset/best_IoU_epoch_N.pth
#   python tools/infer.py configs/custom/my_dataset.py \
#       work_dirs/my_dataset/best_IoU_epoch_N.pth new_photos/ --out preds
# The dataloaders and the model are built from the blocks below in this
# file, so an edit there reaches all of them (of its variables, only
# data_root and split_folders.<split> can be given as --cfg-options).
_base_ = [
    '../_base_/models/mobile_sam.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_10e.py'
]

# ----------------------------------------------------------- your data --
# Layout: data_root/<split folder>/images/<name><img_suffix>
#         data_root/<split folder>/masks/<name><seg_map_suffix>
# Masks: 0/255 (or 0/1) grayscale PNGs, as large as their image; images
# and masks may sit in matching subfolders.
data_root = 'data/my_dataset'
# the folder of each split; without a separate test set, test on 'val'
split_folders = dict(train='train', val='val', test='val')
img_suffix = ('.jpg', '.jpeg', '.png')  # one suffix or a tuple
seg_map_suffix = '.png'  # e.g. '_mask.png' for masks named <name>_mask.png
# 'auto': 0/255 or 0/1 decided from all masks; '0-1' for 0/1 with 255 void
mask_encoding = 'auto'
invert_masks = False  # True when the object is stored dark (value 0)
bit_depth = None  # of 16-bit images, e.g. 12; None: sBIT, else the data's
# ---------------------------------------------------------- model size --
# The square input of the model and the pipelines: 256 for a CPU, 512 or
# 1024 (SAM's own) with a GPU; no weights need resizing.
img_size = 256
# ---------------------------------------------------------------------- --

# Conv-LoRA on every attention qkv of MobileSAM's TinyViT
# (tools/train.py --method lora|cad|decoder_only|... swaps it)
model = dict(
    data_preprocessor=dict(size=(img_size, img_size)),
    backbone=dict(
        img_size=img_size,
        adapter=dict(
            type='ConvLoRA',
            rank=3,
            alpha=32,
            num_experts=8,
            targets={{_base_.tiny_vit_qkv}})),
    decode_head=dict(
        img_size=img_size, loss_decode=dict(type='StructureLoss')))
img_scale = (img_size, img_size)
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
dataloaders = {
    split:
    dict(
        batch_size=4,
        num_workers=2,
        # training workers start afresh each epoch, so that --resume
        # repeats the random augmentations exactly
        persistent_workers=split != 'train',
        sampler=dict(type='DefaultSampler', shuffle=split == 'train'),
        dataset=dict(
            type='BinarySegDataset',
            data_root=data_root,
            data_prefix=dict(
                img_path=f'{folder}/images', seg_map_path=f'{folder}/masks'),
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            mask_encoding=mask_encoding,
            invert_masks=invert_masks,
            bit_depth=bit_depth,
            pipeline=train_pipeline if split == 'train' else test_pipeline))
    for split, folder in split_folders.items()
}
train_dataloader = dataloaders['train']
val_dataloader = dataloaders['val']
test_dataloader = dataloaders['test']
# the recipe of configs/*/kvasir-cvc_mobile-sam.py: batch 4 without
# accumulation, AdamW lr 1e-4 decaying linearly to 0 over the 10 epochs
optim_wrapper = dict(accumulative_counts=1)
# per-image IoU, Dice, accuracy (and Jaccard) at probability 0.5
val_evaluator = dict(type='BinarySegMetric')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='IoU', rule='greater'))
