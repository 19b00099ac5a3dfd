# CAD on SAM ViT-B for Trans10K v1 with the CAD paper's optimiser (AdamW lr
# 2e-4, 20 epochs); the loss stays the multi-class mask-classification loss.
_base_ = ['../decoder_only/trans10k-v1_vit-b.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=512)))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
