# A CPU-sized polyp recipe for MobileSAM at 256x256 (LoRA and Conv-LoRA
# train in well under an hour on 2 CPU cores): structure loss, AdamW lr 1e-4
# (the polyp recipe's) with linear decay to 0, batch 4 without accumulation,
# 2 epochs (562 iterations on the 1124 training pairs), validation by
# S-measure each epoch keeping the best checkpoint; both test sets are
# evaluated in one tools/test.py run.
_base_ = [
    '../datasets/kvasir_cvc.py', '../default_runtime.py',
    '../schedules/schedule_10e.py'
]
max_epochs = 2
optim_wrapper = dict(optimizer=dict(lr=1e-4), accumulative_counts=1)
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(save_best='Sm', rule='greater'))
test_cfg = dict(type='MultiDatasetTestLoop')
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
