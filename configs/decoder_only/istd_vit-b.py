# ISTD shadow detection, frozen SAM ViT-B (for smaller GPUs), only the mask
# decoder trains; balanced BCE.
_base_ = ['../_base_/models/sam_vit-b.py', '../_base_/recipes/istd.py']
model = dict(decode_head=dict(loss_decode=dict(type='BalancedBCELoss')))
