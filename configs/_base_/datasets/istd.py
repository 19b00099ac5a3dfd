# ISTD shadow detection (the CAD / SAM-Adapter shadow benchmark). See
# ISTDShadowDataset for the layouts; make this one with
# tools/dataset_converters/istd.py. Validation: a seeded random 10% of the
# training set.
_base_ = ['./binary_train_val_test.py']
dataset_type = 'ISTDShadowDataset'
data_root = 'data/istd'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_evaluator = dict(type='BERMetric')
test_evaluator = val_evaluator
