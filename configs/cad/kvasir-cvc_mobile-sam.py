# CAD's parallel CNN on MobileSAM's embedding, Kvasir-SEG + CVC-ClinicDB at
# 256x256, the CPU recipe (the same loss, optimizer and schedule as the other
# methods of this comparison, not the CAD paper's). The adapter sees the
# image at 256x256, the data's own resolution (the CAD paper uses half the
# 1024 network input).
_base_ = ['../decoder_only/kvasir-cvc_mobile-sam.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=256)))

# CAD's input image is the original image resized straight to 256x256, as in
# the CAD reference (ResizeCADImage right after loading; PackCADInputs packs
# it, flipped with the network input).
train_pipeline = _base_.train_pipeline[:1] + [
    dict(type='ResizeCADImage', size=256)
] + _base_.train_pipeline[1:-1] + [dict(type='PackCADInputs')]
test_pipeline = _base_.test_pipeline[:1] + [
    dict(type='ResizeCADImage', size=256)
] + _base_.test_pipeline[1:-1] + [dict(type='PackCADInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = [
    dict(loader, dataset=dict(loader.dataset, pipeline=test_pipeline))
    for loader in _base_.test_dataloader
]
