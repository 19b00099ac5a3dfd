# SSF (Lian et al. 2022) on SAM ViT-H: per-channel scale and shift after the
# patch embedding and after LN1, qkv, proj, LN2, fc1, fc2 of every block
# (903,680) plus the mask decoder: 4,409,216 trainable (Table 1: 4.42M).
# Dataset and recipe: SBU shadow detection (balanced BCE, 10 epochs),
# inherited unchanged from configs/decoder_only/sbu.py.
_base_ = ['../decoder_only/sbu.py']
model = dict(backbone=dict(adapter=dict(type='SSF', init_std=0.02)))
