# CAD (parallel convolutional adapter on the image and its high-frequency
# components, added to the frozen SAM ViT-H embedding) for leaf disease
# segmentation, with the recipe of the other methods.
# configs/cad/leaf-disease_vit-b.py trains CAD as its paper does.
_base_ = ['../decoder_only/leaf-disease.py']
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
