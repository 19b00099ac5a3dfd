# Massachusetts Roads: 1500x1500 aerial TIFF tiles, official train / val /
# test splits. See MassRoadsDataset for the layouts; make this one with
# tools/dataset_converters/mass_roads.py.
_base_ = ['./binary_train_val_test.py']
dataset_type = 'MassRoadsDataset'
data_root = 'data/mass_roads'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# IoU, Dice, Acc (per image at 0.5, averaged)
val_evaluator = dict(type='BinarySegMetric')
test_evaluator = val_evaluator
