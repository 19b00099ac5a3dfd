# Leaf disease recipe (the Conv-LoRA paper's): structure loss (set by
# configs/decoder_only/leaf-disease*.py), 30 epochs, lr 3e-4, validation by
# IoU each epoch keeping the highest.
_base_ = [
    '../datasets/leaf_disease.py', '../default_runtime.py',
    '../schedules/schedule_30e.py'
]
optim_wrapper = dict(optimizer=dict(lr=3e-4))
default_hooks = dict(checkpoint=dict(save_best='IoU', rule='greater'))
