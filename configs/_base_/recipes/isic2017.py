# ISIC 2017 recipe (the Conv-LoRA paper's): structure loss (set by
# configs/decoder_only/isic2017*.py), 30 epochs, lr 1e-4, validation by IoU
# (= Jaccard) each epoch keeping the highest.
_base_ = [
    '../datasets/isic2017.py', '../default_runtime.py',
    '../schedules/schedule_30e.py'
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='IoU', rule='greater'))
