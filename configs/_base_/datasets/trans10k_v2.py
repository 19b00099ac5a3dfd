# Trans10K v2 transparent objects (12 classes); see Trans10KDataset for the
# layout and mask encoding. Everything else is as for v1.
_base_ = ['./trans10k_v1.py']
data_root = 'data/Trans10K_cls12'
train_dataloader = dict(dataset=dict(version='v2', data_root=data_root))
val_dataloader = dict(dataset=dict(version='v2', data_root=data_root))
test_dataloader = dict(dataset=dict(version='v2', data_root=data_root))
