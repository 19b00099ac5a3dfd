# LoRA (r=3, alpha=32) on every qkv of SAM ViT-B for Trans10K v2.
_base_ = ['../decoder_only/trans10k-v2_vit-b.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
