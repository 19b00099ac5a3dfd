# LoRA (r=3, alpha=32) on every qkv of SAM ViT-B for leaf disease
# segmentation.
_base_ = ['../decoder_only/leaf-disease_vit-b.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
