# CAD's parallel CNN on MobileSAM's embedding, Kvasir-SEG + CVC-ClinicDB at
# 256x256, the CPU recipe (the same loss, optimizer and schedule as the other
# methods of this comparison, not the CAD paper's). The adapter sees the
# image at 128x128, half the network input as in the CAD paper (512 for
# 1024), so that its three stride-2 blocks land on the 16x16 embedding; at
# 256 its 256-channel dilated convs alone cost about 4x as much (about 20 s
# per step of 4 images on 2 CPU cores).
_base_ = ['../decoder_only/kvasir-cvc_mobile-sam.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=128)))

# CAD's input image is the original image resized straight to 128x128, as in
# the CAD reference (ResizeCADImage right after loading; PackCADInputs packs
# it, flipped with the network input).
train_pipeline = _base_.train_pipeline[:2] + [
    dict(type='ResizeCADImage', size=128)
] + _base_.train_pipeline[2:-1] + [dict(type='PackCADInputs')]
test_pipeline = _base_.test_pipeline[:2] + [
    dict(type='ResizeCADImage', size=128)
] + _base_.test_pipeline[2:-1] + [dict(type='PackCADInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(pipeline=test_pipeline),
    extra_sets=[
        dict(loader, dataset=dict(loader.dataset, pipeline=test_pipeline))
        for loader in _base_.test_dataloader.extra_sets
    ])
