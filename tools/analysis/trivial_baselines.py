"""Score the all-background and mean-training-mask predictions of a binary
dataset with its test metrics; see docs/results.md."""
import copy
import os.path as osp
import sys
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.fileio import dump
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, TRANSFORMS
from mmseg.structures import SegDataSample

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmseg_convlora.apis import inference_config
from mmseg_convlora.engine import named_sets
from tools.analysis.results_table import render
from tools.infer import model_parser


def parse_args(argv=None):
    parser = model_parser(
        __doc__, config='a binary dataset config', checkpoint=None)
    parser.add_argument(
        '--size',
        type=int,
        default=256,
        help='resolution of the mean training mask (default 256)')
    parser.add_argument('--out', help='write the metrics as JSON here')
    return parser.parse_args(argv)


def mean_training_mask(dataset_cfg: dict, size: int) -> torch.Tensor:
    """Foreground frequency per pixel over the training masks (size, size),
    read by the package's binary mask loader."""
    dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
    if len(dataset) == 0:
        raise ValueError('the training set is empty')
    load = TRANSFORMS.build(dict(type='LoadBinaryAnnotations'))
    total = torch.zeros(size, size, dtype=torch.float64)
    for i in range(len(dataset)):
        results = load(
            dict(
                seg_map_path=dataset.get_data_info(i)['seg_map_path'],
                seg_fields=[],
                reduce_zero_label=False))
        mask = torch.from_numpy(results['gt_seg_map'].astype(np.float32))
        total += F.interpolate(
            mask[None, None], size=(size, size), mode='bilinear')[0, 0]
    return (total / len(dataset)).float()


def score(name: str, dataset_cfg: dict, evaluator_cfg,
          prob_map: torch.Tensor) -> Dict[str, float]:
    """Metrics of predicting ``prob_map`` (resized) for every image."""
    dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
    evaluator = Runner.build_evaluator(None, copy.deepcopy(evaluator_cfg))
    evaluator.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        gt = dataset[i]['data_samples'].gt_sem_seg
        prob = F.interpolate(
            prob_map[None, None], size=gt.shape, mode='bilinear')[0]
        sample = SegDataSample(gt_sem_seg=gt)
        sample.seg_logits = PixelData(data=prob)
        sample.pred_sem_seg = PixelData(data=(prob > 0.5).long())
        evaluator.process([sample.to_dict()])
    metrics = evaluator.evaluate(len(dataset))
    return {f'{name}/{k}': float(v) for k, v in metrics.items()}


def main(argv=None):
    args = parse_args(argv)
    cfg = inference_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    out_channels = cfg.model.decode_head.get('out_channels', 1)
    if out_channels != 1:
        raise SystemExit(f'{args.config}: trivial baselines are defined for '
                         f'binary datasets (out_channels=1), this config has '
                         f'out_channels={out_channels}.')
    mean_mask = mean_training_mask(cfg.train_dataloader.dataset, args.size)
    baselines = {
        'all background': torch.zeros_like(mean_mask),
        'mean training mask': mean_mask,
    }
    results: Dict[str, Dict[str, float]] = {}
    for baseline, prob_map in baselines.items():
        results[baseline] = {}
        for name, loader in named_sets(cfg.test_dataloader):
            ev_cfg = loader.get('evaluator', cfg.test_evaluator)
            results[baseline].update(
                score(name, loader['dataset'], ev_cfg, prob_map))
    sets, metrics = zip(*(k.split('/', 1) for k in results['all background']))
    sets, metrics = list(dict.fromkeys(sets)), list(dict.fromkeys(metrics))
    rows = [[baseline, s] + [f'{values[f"{s}/{m}"]:.4f}' for m in metrics]
            for baseline, values in results.items() for s in sets]
    print(render(['baseline', 'test set'] + metrics, rows), end='')
    if args.out:
        dump(results, args.out, indent=1)
        print(f'written to {osp.abspath(args.out)}')
    return results


if __name__ == '__main__':
    main()
