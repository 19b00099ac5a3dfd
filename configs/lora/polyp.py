# LoRA (r=3, alpha=32) on every qkv of SAM ViT-H for polyp segmentation.
_base_ = ['../decoder_only/polyp.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
