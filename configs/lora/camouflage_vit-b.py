# LoRA (r=3, alpha=32) on every qkv of SAM ViT-B for camouflaged object
# detection.
_base_ = ['../decoder_only/camouflage_vit-b.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
