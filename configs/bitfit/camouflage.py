# BitFit on SAM ViT-H: every bias of the frozen ViT trains (patch
# embedding, LayerNorms, qkv, proj, MLP, neck norms: 452,352) plus the mask
# decoder: 3,957,888 trainable (the Conv-LoRA paper's Table 1: 3.96M).
# Dataset and recipe: camouflaged object detection (structure loss, 20 epochs),
# inherited unchanged from configs/decoder_only/camouflage.py.
_base_ = ['../decoder_only/camouflage.py']
model = dict(backbone=dict(adapter=dict(type='BitFit')))
