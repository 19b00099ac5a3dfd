# LoRA (r=3, alpha=32) on every qkv of SAM ViT-H for Trans10K v1.
_base_ = ['../decoder_only/trans10k-v1.py']
model = dict(backbone=dict(adapter=dict(type='LoRA', rank=3, alpha=32)))
