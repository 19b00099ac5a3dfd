# Conv-LoRA on a frozen SAM ViT-B at 512x512 with the multi-class SAM
# decoder (100 mask tokens) on mmseg's PASCAL VOC 2012 (21 classes),
# 80k iterations.
_base_ = [
    '../_base_/models/sam_vit-b_multiclass.py',
    '../_base_/datasets/pascal_voc12_sam-512x512.py',
    '../_base_/schedules/schedule_80k.py'
]
num_classes = 21
model = dict(
    data_preprocessor=dict(
        size={{_base_.sam_size}}, test_cfg=dict(size={{_base_.sam_size}})),
    backbone=dict(
        img_size=512,
        adapter=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8)),
    decode_head=dict(
        num_classes=num_classes,
        out_channels=num_classes,
        img_size=512,
        loss_decode=dict(num_classes=num_classes)))
