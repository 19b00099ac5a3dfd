# Conv-LoRA on SAM ViT-B for Trans10K v1 with the multi-class SAM decoder;
# the paper weights the MoE load-balancing loss by 2.0 on Trans10K.
_base_ = ['../decoder_only/trans10k-v1_vit-b.py']
model = dict(
    backbone=dict(
        adapter=dict(
            type='ConvLoRA', rank=3, alpha=32, num_experts=8,
            loss_weight=2.0)))
