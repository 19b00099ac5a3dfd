# LoRA (r=3, alpha=32) on every qkv of SAM ViT-H for ISTD shadow detection.
_base_ = ['../decoder_only/istd.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
