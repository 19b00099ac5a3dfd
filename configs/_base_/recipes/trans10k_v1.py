# Trans10K v1 recipe: lr 1e-4, validation by mIoU each epoch keeping the
# highest. The Conv-LoRA paper gives no epoch count for Trans10K; 20 epochs
# is this package's choice, not the paper's.
_base_ = [
    '../datasets/trans10k_v1.py', '../default_runtime.py',
    '../schedules/schedule_20e.py'
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='mIoU', rule='greater'))
