# LoRA (r=3, alpha=32) on every qkv of SAM ViT-H for Massachusetts Roads
# segmentation.
_base_ = ['../decoder_only/mass-roads.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
