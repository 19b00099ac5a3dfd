"""Train a segmentor: mmseg's tools/train.py with the plugin's options."""
import logging
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tools.config_checks import user_errors

with user_errors('--debug' in sys.argv):  # e.g. a broken torch install
    from mmseg_convlora.engine import WorkDirLock, find_resume_checkpoint
    from tools.config_overrides import load_config, run, tool_parser

from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log


def parse_args(argv=None):
    parser = tool_parser('Train a segmentor')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from the newest complete checkpoint in the work dir, or '
        'from the checkpoint given')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        default='float16',
        help='autocast dtype for --amp (bfloat16 needs no loss scaling)')
    parser.add_argument(
        '--nonfinite',
        choices=['raise', 'skip'],
        help='on a NaN/inf loss stop training (raise, the configs\' '
        'default) or skip that optimizer step')
    parser.add_argument(
        '--trial',
        type=int,
        metavar='N',
        help='N training iterations in one epoch and at most N validation '
        'batches (default work dir work_dirs/<config>_trial)')
    args = parser.parse_args(argv)
    if args.trial is not None and args.trial < 1:
        parser.error(f'--trial must be at least 1, got {args.trial}')
    return args


def setup_amp(cfg: Config, dtype: str) -> None:
    """Switch the optimizer wrapper to mmengine's AmpOptimWrapper
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
        cfg = load_config(args)
        if args.amp:
            setup_amp(cfg, args.amp_dtype)
        if args.nonfinite is not None:
            setup_nonfinite(cfg, args.nonfinite)
        # one process writes the work dir: lock it before the runner does
        lock = WorkDirLock(cfg.work_dir) if args.launcher == 'none' or \
            os.environ.get('RANK', os.environ.get('SLURM_PROCID')) == '0' \
            else None
        try:
            if lock is not None:
                lock.acquire()
            if args.resume is not None:
                # refuse before the model is built; SafeCheckpointHook
                # checks again when mmengine's own tools/train.py is used
                cfg.resume = True
                cfg.load_from = find_resume_checkpoint(
                    cfg.work_dir,
                    None if args.resume == 'auto' else args.resume)
            run(cfg, 'train')
        finally:
            if lock is not None:
                lock.release()


if __name__ == '__main__':
    main()
