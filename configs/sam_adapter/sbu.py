# SAM-Adapter (Chen et al. 2023) on SAM ViT-H: prompts from the image's
# high-frequency components and the patch embedding (width 1280 / 16 = 80),
# one lightweight MLP per block and a shared up-projection, added to each
# block's input (475,040) plus the mask decoder: 3,980,576 trainable
# (Table 1: 3.98M).
# Dataset and recipe: SBU shadow detection (balanced BCE, 10 epochs),
# inherited unchanged from configs/decoder_only/sbu.py.
_base_ = ['../decoder_only/sbu.py']
model = dict(
    backbone=dict(
        adapter=dict(type='SAMAdapter', scale_factor=16, freq_rate=0.25)))
