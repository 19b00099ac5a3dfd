# BitFit on SAM ViT-H: every bias of the frozen ViT trains (patch
# embedding, LayerNorms, qkv, proj, MLP, neck norms: 452,352) plus the mask
# decoder: 3,957,888 trainable (the Conv-LoRA paper's Table 1: 3.96M).
# Dataset and recipe: polyp segmentation (structure loss, 30 epochs),
# inherited unchanged from configs/decoder_only/polyp.py.
_base_ = ['../decoder_only/polyp.py']
model = dict(backbone=dict(adapter=dict(type='BitFit')))
