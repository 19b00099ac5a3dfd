# SBU shadow detection, frozen SAM ViT-B, only the mask decoder trains.
_base_ = ['../_base_/models/sam_vit-b.py', '../_base_/recipes/sbu.py']
model = dict(decode_head=dict(loss_decode=dict(type='BalancedBCELoss')))
