# BitFit on SAM ViT-H: every bias of the frozen ViT trains (patch
# embedding, LayerNorms, qkv, proj, MLP, neck norms: 452,352) plus the mask
# decoder: 3,957,888 trainable (the Conv-LoRA paper's Table 1: 3.96M).
# Dataset and recipe: SBU shadow detection (balanced BCE, 10 epochs),
# inherited unchanged from configs/decoder_only/sbu.py.
_base_ = ['../decoder_only/sbu.py']
model = dict(backbone=dict(adapter=dict(type='BitFit')))
