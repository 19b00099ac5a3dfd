"""Train a SAM segmentor (mmseg's tools/train.py with the plugin loaded).

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--amp-dtype {float16,bfloat16}] [--nonfinite {raise,skip}]
        [--method METHOD] [--trial N] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--debug]
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
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from mmseg_convlora.compat import allow_mmengine_checkpoint_types
from mmseg_convlora.engine import (find_resume_checkpoint, init_dist_on_cpu,
                                   shutdown_distributed)
from mmseg_convlora.engine.hooks.trainable_checkpoint_hook import RESUME_ADVICE
from mmseg_convlora.models.utils import CheckpointMismatchError
from tools.config_overrides import (METHOD_ADAPTERS, apply_overrides,
                                    config_warnings)
from tools.make_demo_data import build_missing_demo_data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the newest complete checkpoint in the work dir, or '
        'from the checkpoint given; an error if there is none')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (fp16 with dynamic '
        'loss scaling by default)')
    parser.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        default='float16',
        help='autocast dtype for --amp (bfloat16 needs no loss scaling)')
    parser.add_argument(
        '--nonfinite',
        choices=['raise', 'skip'],
        help='what a NaN/inf loss does: stop training naming the iteration '
        'and loss term (raise, the configs\' default) or skip that '
        'optimizer step (skip)')
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
        '--trial',
        type=int,
        metavar='N',
        help='a trial run: N training iterations in one epoch, validation '
        'on at most N batches, checkpoints saved (default work dir '
        'work_dirs/<config>_trial)')
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
    if args.trial is not None and args.trial < 1:
        parser.error(f'--trial must be at least 1, got {args.trial}')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_amp(cfg: Config, dtype: str) -> None:
    """Switch the config's optimizer wrapper to mmengine's AmpOptimWrapper
    (CPUAmpOptimWrapper without a GPU)."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'CPUAmpOptimWrapper'):
        print_log(
            'AMP training is already enabled in your config.',
            logger='current',
            level=logging.WARNING)
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(
            f'--amp needs optim_wrapper.type="OptimWrapper", but the config '
            f'uses {wrapper!r}. Set AmpOptimWrapper in the config instead.')
    on_cpu = get_device() == 'cpu'
    cfg.optim_wrapper.type = 'CPUAmpOptimWrapper' if on_cpu \
        else 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = dtype
    if not on_cpu and cfg.get('strategy', {}).get('type') == 'FSDPStrategy':
        cfg.optim_wrapper.use_fsdp = True  # ShardedGradScaler
    # bf16 has fp32's range: loss scaling would only cost time
    cfg.optim_wrapper.loss_scale = 'dynamic' if dtype == 'float16' else 1.0


def setup_nonfinite(cfg: Config, action: str) -> None:
    """Set (or add) the NonFiniteLossHook's action."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    for hook in hooks:
        if hook.get('type') == 'NonFiniteLossHook':
            hook['action'] = action
            break
    else:
        hooks.append(dict(type='NonFiniteLossHook', action=action))
    cfg.custom_hooks = hooks


def main(argv=None):
    args = parse_args(argv)
    with user_errors(args.debug):
        train(args)


def train(args):
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    for note in apply_overrides(cfg, args.cfg_options, args.method,
                                args.trial):
        print_log(note, logger='current')
    check_config(cfg)
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
        if args.trial is not None:  # not mixed into a real run's dir
            cfg.work_dir += '_trial'
    if args.amp:
        setup_amp(cfg, args.amp_dtype)
    if args.nonfinite is not None:
        setup_nonfinite(cfg, args.nonfinite)
    try:
        if args.resume is not None:
            # refuse before the model is built; SafeCheckpointHook checks
            # again when mmengine's own tools/train.py is used
            cfg.resume = True
            cfg.load_from = find_resume_checkpoint(
                cfg.work_dir, None if args.resume == 'auto' else args.resume)

        # torchrun on a machine without GPUs: start gloo before mmengine
        # tries to select a CUDA device
        init_dist_on_cpu(args.launcher, cfg)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
            else RUNNERS.build(cfg)
        # checkpoints of earlier versions hold mmengine objects
        with allow_mmengine_checkpoint_types():
            runner.train()
    except CheckpointMismatchError as err:
        if cfg.get('load_from'):
            err.source = f'The checkpoint {cfg.load_from!r}'
        if cfg.get('resume'):
            err.advice = RESUME_ADVICE
        raise
    finally:
        shutdown_distributed()


if __name__ == '__main__':
    main()
