# Conv-LoRA on SAM ViT-B for SBU (for smaller GPUs).
_base_ = ['../decoder_only/sbu_vit-b.py']
model = dict(
    backbone=dict(
        adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)))
