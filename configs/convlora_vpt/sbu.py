# Conv-LoRA + VPT on SAM ViT-H (the Conv-LoRA paper's Table 12): Conv-LoRA
# (r=3, alpha=32, 8 experts) on every qkv and 5 deep prompt tokens per block
# (Conv-LoRA 514,560 + VPT 204,800) plus the mask decoder: 4,224,896
# trainable (Table 12: 4.23M). The prompts' keys/values use Conv-LoRA's
# linear low-rank path; the experts route the image tokens.
# Dataset and recipe: SBU shadow detection (balanced BCE, 10 epochs),
# inherited unchanged from configs/decoder_only/sbu.py.
_base_ = ['../decoder_only/sbu.py']
model = dict(
    backbone=dict(adapter=[
        dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8),
        dict(type='VPT', num_tokens=5),
    ]))
