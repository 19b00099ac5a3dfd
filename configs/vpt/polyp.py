# Deep VPT (Jia et al. 2022) on SAM ViT-H: 12 learnable prompt tokens per
# block, appended to the keys/values of every window (windowed blocks) or of
# the whole grid (global blocks) (491,520) plus the mask decoder: 3,997,056
# trainable (Table 1: 4.00M).
# Dataset and recipe: polyp segmentation (structure loss, 30 epochs),
# inherited unchanged from configs/decoder_only/polyp.py.
_base_ = ['../decoder_only/polyp.py']
model = dict(backbone=dict(adapter=dict(type='VPT', num_tokens=12)))
