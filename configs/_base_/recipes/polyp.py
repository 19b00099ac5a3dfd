# Polyp recipe (the Conv-LoRA paper's): structure loss (set by
# configs/decoder_only/polyp*.py), 30 epochs, lr 1e-4, validation by
# S-measure each epoch keeping the highest; the five test sets are evaluated
# in one tools/test.py run (keys "Kvasir/Sm", ...).
_base_ = [
    '../datasets/polyp.py', '../default_runtime.py',
    '../schedules/schedule_30e.py'
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='Sm', rule='greater'))
# test_dataloader holds several named test sets (its extra_sets)
test_cfg = dict(type='MultiDatasetTestLoop')
