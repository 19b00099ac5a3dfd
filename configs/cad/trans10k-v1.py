# CAD on SAM ViT-H for Trans10K v1, with the recipe of the other methods.
_base_ = ['../decoder_only/trans10k-v1.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=512)))

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
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
