# LoRA (r=3, alpha=32) on every qkv of SAM ViT-H for ISIC 2017 skin lesion
# segmentation.
_base_ = ['../decoder_only/isic2017.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
