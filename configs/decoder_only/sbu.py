# SBU shadow detection, frozen SAM ViT-H, only the mask decoder trains.
# The adapter configs (configs/{convlora,lora,cad}/sbu.py) inherit this file
# and add their adapter; nothing else differs.
_base_ = ['../_base_/models/sam_vit-h.py', '../_base_/recipes/sbu.py']
model = dict(decode_head=dict(loss_decode=dict(type='BalancedBCELoss')))
