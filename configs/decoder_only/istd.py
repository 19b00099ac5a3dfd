# ISTD shadow detection, frozen SAM ViT-H (as the other datasets; ISTD is a
# CAD-paper dataset, not a Conv-LoRA-paper one), only the mask decoder
# trains; balanced BCE (the SBU recipe). The adapter configs
# (configs/{convlora,lora,cad}/istd.py) inherit this file and add their
# adapter; nothing else differs.
_base_ = ['../_base_/models/sam_vit-h.py', '../_base_/recipes/istd.py']
model = dict(decode_head=dict(loss_decode=dict(type='BalancedBCELoss')))
