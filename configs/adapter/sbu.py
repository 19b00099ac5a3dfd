# Adapter (Houlsby et al. 2019) on SAM ViT-H: a bottleneck MLP (width 2,
# identity at init) after the attention and after the MLP of each of the 32
# blocks (409,728) plus the mask decoder: 3,915,264 trainable (Table 1:
# 3.92M).
# Dataset and recipe: SBU shadow detection (balanced BCE, 10 epochs),
# inherited unchanged from configs/decoder_only/sbu.py.
_base_ = ['../decoder_only/sbu.py']
model = dict(
    backbone=dict(
        adapter=dict(
            type='HoulsbyAdapter', hidden_dim=2, positions=('attn', 'mlp'))))
