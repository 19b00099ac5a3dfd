"""Evaluate a checkpoint: mmseg's tools/test.py with the plugin's options.

No ``--tta``: mmseg's ``SegTTAModel`` takes our probabilities for logits
and keeps only the hard mask; the saliency metrics and ``--out`` need the
probabilities.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tools.config_checks import user_errors

with user_errors('--debug' in sys.argv):  # e.g. a broken torch install
    from mmseg_convlora.engine import CheckpointFileError, verify_checkpoint
    from tools.config_overrides import load_config, run, tool_parser


def parse_args(argv=None):
    parser = tool_parser('MMSeg test (and eval) a segmentor')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
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
        help='with --show/--show-dir draw every N-th test batch (default 1)')
    parser.add_argument(
        '--show-alpha',
        type=float,
        default=0.5,
        help='opacity of the class colours over the image (default 0.5)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    return parser.parse_args(argv)


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
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(
                f'Checkpoint {args.checkpoint!r} not found. Pass a .pth '
                'written by tools/train.py (e.g. '
                'work_dirs/<config>/best_*.pth).')
        try:
            verify_checkpoint(args.checkpoint)
        except CheckpointFileError as err:
            sys.exit(f'error: {err} Copy it again from where training '
                     'wrote it, or pass another checkpoint of the run.')
        cfg = load_config(args, training=False)
        cfg.load_from = args.checkpoint
        if args.show or args.show_dir:
            cfg = trigger_visualization_hook(cfg, args)
        if args.out is not None:
            cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
                dict(type='SavePredictionsHook', out_dir=args.out)
            ]
        return run(cfg, 'test')


if __name__ == '__main__':
    main()
