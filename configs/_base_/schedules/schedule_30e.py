# The reference recipe of schedule_10e.py, for 30 epochs.
_base_ = ['./schedule_10e.py']
max_epochs = 30
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
train_cfg = dict(max_epochs=max_epochs)
