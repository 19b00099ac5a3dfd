# MobileSAM (frozen TinyViT-5M) at 256x256 on Kvasir-SEG + CVC-ClinicDB,
# only the mask decoder trains; the CPU recipe. The adapter configs
# (configs/{lora,convlora,cad}/kvasir-cvc_mobile-sam.py) inherit this file
# and add their adapter; nothing else differs.
_base_ = [
    '../_base_/models/mobile_sam.py', '../_base_/recipes/kvasir_cvc_cpu.py'
]
img_size = 256
model = dict(
    data_preprocessor=dict(size=(img_size, img_size)),
    backbone=dict(img_size=img_size),
    # the Conv-LoRA reference's binary head: only SAM's first mask token
    # in the decoder's token sequence
    decode_head=dict(img_size=img_size, keep_sam_multimask_tokens=False))
