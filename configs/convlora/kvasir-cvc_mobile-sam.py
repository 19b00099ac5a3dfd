# Conv-LoRA (r=3, alpha=32, 8 multi-scale conv experts, top-1 routing per
# attention window) on every attention qkv of MobileSAM's TinyViT,
# Kvasir-SEG + CVC-ClinicDB at 256x256, the CPU recipe.
_base_ = ['../decoder_only/kvasir-cvc_mobile-sam.py']
model = dict(
    backbone=dict(
        adapter=dict(
            type='ConvLoRA',
            rank=3,
            alpha=32,
            num_experts=8,
            targets={{_base_.tiny_vit_qkv}})))
