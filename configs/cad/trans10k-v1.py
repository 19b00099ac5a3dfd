# CAD on SAM ViT-H for Trans10K v1, with the recipe of the other methods.
_base_ = ['../decoder_only/trans10k-v1.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=512)))
