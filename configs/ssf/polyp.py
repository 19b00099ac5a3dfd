# SSF (Lian et al. 2022) on SAM ViT-H: per-channel scale and shift after the
# patch embedding and after LN1, qkv, proj, LN2, fc1, fc2 of every block
# (903,680) plus the mask decoder: 4,409,216 trainable (Table 1: 4.42M).
# Dataset and recipe: polyp segmentation (structure loss, 30 epochs),
# inherited unchanged from configs/decoder_only/polyp.py.
_base_ = ['../decoder_only/polyp.py']
model = dict(backbone=dict(adapter=dict(type='SSF', init_std=0.02)))
