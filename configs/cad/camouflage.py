# CAD (parallel convolutional adapter on the image and its high-frequency
# components, added to the frozen SAM ViT-H embedding) for camouflaged object
# detection, with the recipe of the other methods.
# configs/cad/camouflage_vit-b.py trains CAD as its paper does.
_base_ = ['../decoder_only/camouflage.py']
model = dict(backbone=dict(adapter=dict(type='CAD', input_size=512)))
