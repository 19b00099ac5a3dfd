# Massachusetts Roads segmentation, frozen SAM ViT-H (as in the paper), only
# the mask decoder trains; structure loss (BCE + weighted IoU). The adapter
# configs (configs/{convlora,lora,cad}/mass-roads.py) inherit this file and
# add their adapter; nothing else differs.
_base_ = ['../_base_/models/sam_vit-h.py', '../_base_/recipes/mass_roads.py']
model = dict(decode_head=dict(loss_decode=dict(type='StructureLoss')))
