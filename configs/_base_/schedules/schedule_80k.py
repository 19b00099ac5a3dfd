# 80k iterations for mmseg's ADE20K / VOC / Cityscapes configs: AdamW
# (lr 1e-4, eps 1e-6, weight decay 1e-4 on weights only, gradient clipping
# at norm 1, as this package's other recipes), 1500 linear warm-up
# iterations, then linear decay to 0. Validation (mIoU) every 8000
# iterations keeps the best checkpoint. Not tuned for these datasets.
# Iteration-based, so it brings the runtime with its hooks and logs counted
# in iterations (configs using it do not list default_runtime.py again).
_base_ = ['../default_runtime.py']
max_iters = 80000
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='PEFTOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-6,
        weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        begin=1500,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(
        by_epoch=False, interval=8000, save_best='mIoU', rule='greater'))
log_processor = dict(by_epoch=False)
