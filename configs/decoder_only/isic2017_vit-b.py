# ISIC 2017 skin lesion segmentation, frozen SAM ViT-B (for smaller GPUs),
# only the mask decoder trains; structure loss (BCE + weighted IoU).
_base_ = ['../_base_/models/sam_vit-b.py', '../_base_/recipes/isic2017.py']
model = dict(decode_head=dict(loss_decode=dict(type='StructureLoss')))
