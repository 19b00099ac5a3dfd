# CAD (parallel convolutional adapter on the image and its high-frequency
# components, added to the frozen SAM ViT-H embedding) for SBU, with the SBU
# recipe. The encoder runs without autograd.
_base_ = ['../decoder_only/sbu.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=512)))
