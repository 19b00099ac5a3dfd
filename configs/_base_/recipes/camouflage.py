# Camouflage recipe (the Conv-LoRA paper's): structure loss (set by
# configs/decoder_only/camouflage*.py), 20 epochs, lr 1e-4, validation by
# S-measure each epoch keeping the highest; CAMO, COD10K and CHAMELEON are
# evaluated in one tools/test.py run (keys "CAMO/Sm", ...).
_base_ = [
    '../datasets/camouflage.py', '../default_runtime.py',
    '../schedules/schedule_20e.py'
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='Sm', rule='greater'))
# test_dataloader holds several named test sets (its extra_sets)
test_cfg = dict(type='MultiDatasetTestLoop')
