# LoRA (r=3, alpha=32) on every attention qkv of MobileSAM's TinyViT
# (10 layers), Kvasir-SEG + CVC-ClinicDB at 256x256, the CPU recipe.
_base_ = ['../decoder_only/kvasir-cvc_mobile-sam.py']
model = dict(
    backbone=dict(
        adapter=dict(
            type='LoRA', rank=3, alpha=32, targets={{_base_.tiny_vit_qkv}})))
