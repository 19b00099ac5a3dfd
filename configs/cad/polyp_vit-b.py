# CAD as its paper trains it: SAM ViT-B, 512x512 adapter input, BCE + IoU
# loss, AdamW lr 2e-4, 20 epochs; the polyp segmentation data and validation
# otherwise.
_base_ = ['../decoder_only/polyp_vit-b.py']
model = dict(
    backbone=dict(adapter=dict(type='CAD', input_size=512)),
    # BCE + plain IoU smoothed by 1e-3, as the CAD reference code: the
    # structure loss without boundary weights. The reference computes it at
    # 512x512; here, as for every method, on the logits upsampled to the
    # 1024x1024 input.
    decode_head=dict(
        loss_decode=dict(
            _delete_=True,
            type='StructureLoss',
            boundary_weight=0.0,
            iou_smooth=1e-3)))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True)
]

# CAD's input image is the original image resized straight to 512x512, as in
# the CAD reference (ResizeCADImage right after loading; PackCADInputs packs
# it, flipped with the network input), not the 1024x1024 network input
# downsampled.
train_pipeline = _base_.train_pipeline[:2] + [
    dict(type='ResizeCADImage', size=512)
] + _base_.train_pipeline[2:-1] + [dict(type='PackCADInputs')]
test_pipeline = _base_.test_pipeline[:2] + [
    dict(type='ResizeCADImage', size=512)
] + _base_.test_pipeline[2:-1] + [dict(type='PackCADInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(pipeline=test_pipeline),
    extra_sets=[
        dict(loader, dataset=dict(loader.dataset, pipeline=test_pipeline))
        for loader in _base_.test_dataloader.extra_sets
    ])
