# The Conv-LoRA paper's recipe: AdamW (eps 1e-6, weight decay 1e-4
# on weights only), linear decay to 0 without warm-up, effective batch 4
# (batch 1 per GPU x 4 accumulated steps), gradient clipping at norm 1.
# fp16 mixed precision: tools/train.py --amp.
max_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='PEFTOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-6,
        weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    accumulative_counts=4,
    clip_grad=dict(max_norm=1.0, norm_type=2))
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
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
