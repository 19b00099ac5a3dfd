# Conv-LoRA on SAM ViT-B for ISTD shadow detection: LoRA (r=3, alpha=32) on
# every qkv with a mixture of 8 multi-scale conv experts between A and B;
# load-balancing loss_moe weight 1.
_base_ = ['../decoder_only/istd_vit-b.py']
model = dict(
    backbone=dict(
        adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)))
