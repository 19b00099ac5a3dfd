# Conv-LoRA on SAM ViT-H for ISIC 2017 skin lesion segmentation (the paper's
# setting): LoRA (r=3, alpha=32) on every qkv with a mixture of 8 multi-scale
# conv experts between A and B; load-balancing loss_moe weight 1.
_base_ = ['../decoder_only/isic2017.py']
model = dict(
    backbone=dict(
        adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)))
