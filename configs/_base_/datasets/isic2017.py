# ISIC 2017 skin lesion segmentation with the official train / val / test
# splits. See ISIC2017Dataset for the layouts; make this one with
# tools/dataset_converters/isic2017.py.
_base_ = ['./binary_train_val_test.py']
dataset_type = 'ISIC2017Dataset'
data_root = 'data/isic2017'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# Jaccard (= per-image IoU), threshold Jaccard, Dice, Acc (and IoU)
val_evaluator = dict(type='BinarySegMetric')
test_evaluator = val_evaluator
