# Leaf disease segmentation. See LeafDiseaseDataset for the layouts; make
# this one with tools/dataset_converters/leaf_disease.py (seeded random
# train / val / test split: the release has none).
_base_ = ['./binary_train_val_test.py']
dataset_type = 'LeafDiseaseDataset'
data_root = 'data/leaf_disease'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# IoU, Dice, Acc (per image at 0.5, averaged)
val_evaluator = dict(type='BinarySegMetric')
test_evaluator = val_evaluator
