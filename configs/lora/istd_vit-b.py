# LoRA (r=3, alpha=32) on every qkv of SAM ViT-B for ISTD shadow detection.
_base_ = ['../decoder_only/istd_vit-b.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
