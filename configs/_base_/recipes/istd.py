# ISTD shadow recipe. ISTD is not in the Conv-LoRA paper (its recipe table
# has no row for it); this package uses the SBU shadow recipe: balanced BCE
# (set by configs/decoder_only/istd*.py), 10 epochs, lr 1e-4, validation by
# BER each epoch keeping the lowest. configs/cad/istd_vit-b.py trains CAD as
# its paper does instead.
_base_ = [
    '../datasets/istd.py', '../default_runtime.py',
    '../schedules/schedule_10e.py'
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='BER', rule='less'))
