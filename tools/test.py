"""Evaluate a SAM segmentor checkpoint (mmseg's tools/test.py + the plugin).

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show-dir DIR [--show-interval N] [--show-alpha A]]
        [--method METHOD] [--cfg-options k=v ...] [--launcher ...] [--debug]

Checkpoints written by training hold only the trainable weights; the frozen
SAM weights are read from the config's ``model.sam_checkpoint``.

mmseg's ``--tta`` is not offered: its ``SegTTAModel`` takes the segmentor's
output for logits (this segmentor gives probabilities) and keeps only the
hard mask, which the saliency metrics (S-measure, E-measure, MAE) and
``--out`` cannot use.
"""
import argparse
import logging
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tools.config_checks import check_config, user_errors

with user_errors('--debug' in sys.argv):  # e.g. a broken torch install
    import mmseg_convlora  # noqa: F401  registers the plugin

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from mmseg_convlora.compat import allow_mmengine_checkpoint_types
from mmseg_convlora.engine import init_dist_on_cpu, shutdown_distributed
from mmseg_convlora.models.utils import CheckpointMismatchError
from tools.config_overrides import (METHOD_ADAPTERS, apply_overrides,
                                    config_warnings)
from tools.make_demo_data import build_missing_demo_data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a SAM segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the evaluation results (json) and logs')
    parser.add_argument(
        '--out',
        type=str,
        help='directory to save the predictions as PNG files: binary '
        'models write the foreground probability (0-255), multi-class '
        'models the class index, one file per image')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where the overlays (ground truth left, prediction '
        'right, class colours from the dataset palette) are saved, as '
        'DIR/vis_data/vis_image/test_<image name>_0.png')
    parser.add_argument(
        '--show-interval',
        type=int,
        default=1,
        help='with --show/--show-dir draw every N-th test batch (default 1: '
        'every image)')
    parser.add_argument(
        '--show-alpha',
        type=float,
        default=0.5,
        help='opacity of the class colours over the image (default 0.5)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, e.g. '
        'model.sam_checkpoint=/path/to/sam_vit_h_4b8939.pth; data_root=DIR '
        'and train_cfg.max_epochs=N reach every dataloader and the LR '
        'schedule')
    parser.add_argument(
        '--method',
        choices=sorted(METHOD_ADAPTERS),
        help='replace the config\'s adapter(s) (model.backbone.adapter) by '
        'this method\'s, as in configs/<method>/; loss and schedule stay')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of errors (they end in one line otherwise; '
        'the log file of the run keeps it)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks, e.g. '
            "visualization=dict(type='SegVisualizationHook')")
    hook = default_hooks['visualization']
    hook['draw'] = True
    hook['interval'] = args.show_interval
    cfg.visualizer['alpha'] = args.show_alpha
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        return test(args)


def test(args):
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {args.checkpoint!r} not found. Pass a .pth written '
            'by tools/train.py (e.g. work_dirs/<config>/best_*.pth).')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    for note in apply_overrides(cfg, args.cfg_options, args.method):
        print_log(note, logger='current')
    check_config(cfg, training=False)
    for warning in config_warnings(cfg):
        print_log(warning, logger='current', level=logging.WARNING)
    if args.launcher == 'none':  # one process: nothing races for the files
        for built in build_missing_demo_data(cfg):
            print_log(f'Built {built}', logger='current')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.out is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='SavePredictionsHook', out_dir=args.out)
        ]
    init_dist_on_cpu(args.launcher, cfg)  # torchrun without GPUs: gloo
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    try:
        with allow_mmengine_checkpoint_types():
            return runner.test()
    except CheckpointMismatchError as err:
        err.source = f'The checkpoint {args.checkpoint!r}'
        raise
    finally:
        shutdown_distributed()


if __name__ == '__main__':
    main()
