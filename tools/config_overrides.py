"""What tools/train.py and tools/test.py share (not a script): arguments,
config loading with the overrides that reach every place a config built
from them, warnings for child configs, and the run."""
import argparse
import copy
import logging
import os
import os.path as osp
from typing import Iterator, List, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from mmseg_convlora.compat import allow_mmengine_checkpoint_types
from mmseg_convlora.engine import (init_dist_on_cpu, named_sets,
                                   shutdown_distributed)
from mmseg_convlora.engine.hooks.trainable_checkpoint_hook import RESUME_ADVICE
from mmseg_convlora.models.backbones import DEFAULT_TINY_VIT_QKV
from mmseg_convlora.models.utils import CheckpointMismatchError
from tools.config_checks import (ConfigError, check_config, check_overrides,
                                 did_you_mean)

# ``model.backbone.adapter`` of each method, as in configs/<method>/*.py
# (tests/tools/test_config_overrides.py keeps the two equal).
METHOD_ADAPTERS = dict(
    decoder_only=None,
    lora=dict(type='LoRA', rank=3, alpha=32),
    convlora=dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8),
    cad=dict(type='CAD', input_size=512),
    bitfit=dict(type='BitFit'),
    adapter=dict(
        type='HoulsbyAdapter', hidden_dim=2, positions=('attn', 'mlp')),
    vpt=dict(type='VPT', num_tokens=12),
    ssf=dict(type='SSF', init_std=0.02),
    sam_adapter=dict(type='SAMAdapter', scale_factor=16, freq_rate=0.25),
    convlora_vpt=[
        dict(type='ConvLoRA', rank=3, alpha=32, num_experts=8),
        dict(type='VPT', num_tokens=5),
    ])


def tool_parser(description: str) -> argparse.ArgumentParser:
    """The arguments tools/train.py and tools/test.py share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--work-dir',
        help='the dir to save logs, checkpoints and evaluation results')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, e.g. data_root=DIR '
        'model.sam_checkpoint=/path/to/sam_vit_h_4b8939.pth')
    parser.add_argument(
        '--method',
        choices=sorted(METHOD_ADAPTERS),
        help='replace the config\'s adapter(s) by this method\'s, as in '
        'configs/<method>/')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of errors (the log file keeps it)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def load_config(args: argparse.Namespace, training: bool = True) -> Config:
    """The config of ``args`` with its overrides applied and checked, its
    demo data built if missing and its work dir set."""
    # make_demo_data imports this module
    from tools.make_demo_data import build_missing_demo_data
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    trial = args.trial if training else None
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    for note in apply_overrides(cfg, args.cfg_options, args.method, trial):
        print_log(note, logger='current')
    check_config(cfg, training)
    for warning in config_warnings(cfg):
        print_log(warning, logger='current', level=logging.WARNING)
    if args.launcher == 'none':  # one process: nothing races for the files
        for built in build_missing_demo_data(cfg):
            print_log(f'Built {built}', logger='current')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
        if trial is not None:  # not mixed into a real run's dir
            cfg.work_dir += '_trial'
    return cfg


def run(cfg: Config, mode: str):
    """Build the runner of ``cfg`` and return ``runner.<mode>()``
    (``train`` or ``test``)."""
    try:
        init_dist_on_cpu(cfg.launcher, cfg)  # torchrun without GPUs: gloo
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
            else RUNNERS.build(cfg)
        # checkpoints of earlier versions hold mmengine objects
        with allow_mmengine_checkpoint_types():
            return getattr(runner, mode)()
    except CheckpointMismatchError as err:
        if cfg.get('load_from'):
            err.source = f'The checkpoint {cfg.load_from!r}'
        if mode == 'train' and cfg.get('resume'):
            err.advice = RESUME_ADVICE
        raise
    finally:
        shutdown_distributed()


def loader_datasets(loaders) -> Iterator[dict]:
    """Every dataset dict of dataloader config(s), dataset wrappers and the
    datasets they wrap included."""
    for _, loader in named_sets(loaders):
        stack = [loader.get('dataset')]
        while stack:
            dataset = stack.pop()
            if dataset:
                stack += list(dataset.get('datasets', []))
                stack.append(dataset.get('dataset'))
                yield dataset


def dataset_cfgs(cfg: Config) -> Iterator[dict]:
    """The dataset dicts with a ``data_root`` of every dataloader."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            yield from (d for d in loader_datasets(cfg[key])
                        if 'data_root' in d)


def set_data_root(cfg: Config, data_root: str) -> int:
    """Point the config and every dataset that read its ``data_root`` at
    ``data_root``; return how many datasets."""
    old = cfg.get('data_root')
    datasets = [d for d in dataset_cfgs(cfg) if d['data_root'] == old]
    for dataset in datasets:
        dataset['data_root'] = data_root
    cfg.data_root = data_root
    return len(datasets)


def set_max_epochs(cfg: Config,
                   max_epochs: int,
                   old: Optional[int] = None) -> int:
    """Train ``max_epochs`` epochs and move the LR schedules that ended
    with training (``end == old``); return how many moved."""
    if old is None:
        old = cfg.get('train_cfg', {}).get('max_epochs')
    cfg.train_cfg.max_epochs = max_epochs
    cfg.max_epochs = max_epochs
    moved = 0
    for scheduler in _schedulers(cfg):
        if scheduler.get('by_epoch', True) and scheduler.get('end') == old:
            scheduler['end'] = max_epochs
            moved += 1
    return moved


def set_split_folder(cfg: Config, split: str, folder: str) -> int:
    """Point the ``split`` dataloader of a config with ``split_folders``
    at ``folder``; return how many paths moved."""
    folders = cfg.get('split_folders') or {}
    if split not in folders:
        raise ConfigError(
            f'--cfg-options split_folders.{split}: the config has no split '
            f'{split!r}{did_you_mean(split, folders)}; its split_folders are '
            f'{dict(folders)}.')
    old, moved = folders[split], 0
    loader = cfg.get(f'{split}_dataloader')
    for dataset in loader_datasets(loader) if loader else ():
        prefix = dataset.get('data_prefix') or {}
        for key, path in prefix.items():
            if path == old or str(path).startswith(f'{old}/'):
                prefix[key] = folder + str(path)[len(old):]
                moved += 1
    if not moved:
        raise ConfigError(
            f'--cfg-options split_folders.{split}={folder}: the {split} '
            f'dataloader does not read the folder {old!r}; set '
            f'{split}_dataloader.dataset.data_prefix instead.')
    folders[split] = folder
    return moved


def set_trial(cfg: Config, iters: int) -> None:
    """Make the run a trial: ``iters`` training iterations in one epoch,
    validation on at most ``iters`` batches, then the checkpoints."""
    loop = cfg.train_cfg
    # DDP: each process reads its share of the indices
    batches = iters * int(os.environ.get('WORLD_SIZE', 1))
    if loop.get('type') == 'IterBasedTrainLoop' or (
            'type' not in loop and loop.get('by_epoch') is False):
        loop.update(max_iters=iters, val_interval=iters)
    else:
        set_max_epochs(cfg, 1)
        loop.update(val_interval=1, val_begin=1)
        _take_batches(cfg, 'train_dataloader', batches)
    if cfg.get('val_dataloader'):
        _take_batches(cfg, 'val_dataloader', batches)


def _take_batches(cfg: Config, key: str, batches: int) -> None:
    for _, loader in named_sets(cfg[key]):
        dataset = loader['dataset']
        if 'datasets' in dataset or 'dataset' in dataset:
            raise ConfigError(
                f'--trial: {key}.dataset is a {dataset.get("type")}, which '
                'takes no indices; run with --cfg-options '
                'train_cfg.max_epochs=1 instead.')
        dataset['indices'] = batches * loader.get('batch_size', 1)


def _schedulers(cfg: Config) -> List[dict]:
    schedulers = cfg.get('param_scheduler') or []
    return list(schedulers) if isinstance(schedulers, list) \
        else [schedulers]


def set_method(cfg: Config, method: str) -> None:
    """Replace the backbone's adapter(s) with those of ``method``; CAD's
    input is half the model's and the pipelines get (or lose) its steps;
    LoRA and Conv-LoRA on SAMTinyViT target its qkv layers."""
    if method not in METHOD_ADAPTERS:
        raise KeyError(f'Unknown method {method!r}; choose one of '
                       f'{", ".join(METHOD_ADAPTERS)}.')
    adapter = copy.deepcopy(METHOD_ADAPTERS[method])
    backbone = cfg.model.backbone
    cad_size = None
    for item in adapter if isinstance(adapter, list) else [adapter or {}]:
        if item.get('type') == 'CAD':
            # SAM's own input is 1024 when the backbone does not say
            item['input_size'] = cad_size = backbone.get('img_size', 1024) // 2
        elif item.get('type') in ('LoRA', 'ConvLoRA') and \
                backbone.get('type') == 'SAMTinyViT':
            item['targets'] = DEFAULT_TINY_VIT_QKV
    backbone.adapter = adapter
    pipelines = [cfg.get('train_pipeline'), cfg.get('test_pipeline')]
    pipelines += [d.get('pipeline') for d in dataset_cfgs(cfg)]
    for pipeline in filter(None, pipelines):
        _set_cad_steps(pipeline, cad_size)


def _set_cad_steps(pipeline: list, size: Optional[int]) -> None:
    """Give ``pipeline`` CAD's input steps for ``size``, or none."""
    pipeline[:] = [t for t in pipeline if t.get('type') != 'ResizeCADImage']
    for t in pipeline:
        if t.get('type') in ('PackSegInputs', 'PackCADInputs'):
            t['type'] = 'PackSegInputs' if size is None else 'PackCADInputs'
    if size is not None:
        steps = [t.get('type', '') for t in pipeline]
        loader = steps.index('CheckImage') if 'CheckImage' in steps else next(
            (i for i, t in enumerate(steps)
             if 'Load' in t and 'Annotations' not in t), 0)
        pipeline.insert(loader + 1, dict(type='ResizeCADImage', size=size))


def apply_overrides(cfg: Config,
                    cfg_options: Optional[dict] = None,
                    method: Optional[str] = None,
                    trial: Optional[int] = None) -> List[str]:
    """Merge ``--cfg-options`` (``data_root``, ``max_epochs`` and
    ``split_folders`` reaching every place built from them), apply
    ``--method`` and ``--trial``.

    Returns:
        list[str]: What was changed beyond the plain merge, for the log.
    """
    notes = []
    cfg_options = dict(cfg_options or {})
    handled = ['data_root', 'max_epochs'] + \
        (['split_folders'] if 'split_folders' in cfg else [])
    check_overrides(cfg, cfg_options, handled)
    splits = {
        key.split('.', 1)[1]: cfg_options.pop(key)
        for key in list(cfg_options) if key.startswith('split_folders.')
    }
    if 'split_folders' in cfg_options:
        raise ConfigError('--cfg-options split_folders: set one split at a '
                          'time, e.g. split_folders.test=val.')
    root = cfg_options.pop('data_root', None)
    epochs = cfg_options.pop('train_cfg.max_epochs', None)
    epochs = cfg_options.pop('max_epochs', epochs)
    old_epochs = cfg.get('train_cfg', {}).get('max_epochs')
    cfg.merge_from_dict(cfg_options)
    if root is not None:
        count = set_data_root(cfg, root)
        notes.append(f'data_root={root!r} for all {count} datasets')
    if epochs is not None:
        moved = set_max_epochs(cfg, int(epochs), old_epochs)
        notes.append(f'max_epochs={epochs} for training and {moved} LR '
                     'schedule(s)')
    for split, folder in splits.items():
        set_split_folder(cfg, split, str(folder))
        notes.append(f'the {split} dataloader reads {folder!r}')
    if method is not None:
        set_method(cfg, method)
        notes.append(f'method {method}: model.backbone.adapter='
                     f'{cfg.model.backbone.adapter}')
    if trial is not None:
        set_trial(cfg, trial)
        notes.append(f'trial: {trial} training iteration(s), validation '
                     f'on at most {trial} batch(es)')
    return notes


def config_warnings(cfg: Config) -> List[str]:
    """Settings that a child config changed in one place only, one
    message per problem."""
    warnings = []
    declared = cfg.get('data_root')
    roots = sorted({d['data_root'] for d in dataset_cfgs(cfg)})
    if isinstance(declared, str) and roots and declared not in roots:
        warnings.append(
            f'The config sets data_root={declared!r}, but its dataloaders '
            f'read {roots}: they were built by a base config from its own '
            'data_root, which a child config\'s data_root does not change. '
            f'Run with --cfg-options data_root={declared} (reaches every '
            'dataloader), or build the dataloaders in your config as '
            'configs/custom/binary_dataset.py does.')
    max_epochs = cfg.get('train_cfg', {}).get('max_epochs')
    ends = [(s.get('end'), s.get('type')) for s in _schedulers(cfg)
            if s.get('by_epoch', True) and isinstance(s.get('end'), int)]
    if max_epochs is not None and ends:
        end, kind = max(ends)
        if end != max_epochs:
            warnings.append(
                f'Training runs {max_epochs} epochs but the LR schedule '
                f'({kind}) ends at epoch {end}: a child config that changes '
                'train_cfg.max_epochs does not move it. Run with '
                f'--cfg-options train_cfg.max_epochs={max_epochs} (moves '
                'both), or set param_scheduler too.')
    return warnings
