# SBU shadow recipe (the Conv-LoRA paper's): 10 epochs, lr 1e-4, validation
# by BER each epoch keeping the lowest. The loss (balanced BCE) is set by the
# method configs' common parent, configs/decoder_only/sbu*.py.
_base_ = [
    '../datasets/sbu.py', '../default_runtime.py',
    '../schedules/schedule_10e.py'
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='BER', rule='less'))
