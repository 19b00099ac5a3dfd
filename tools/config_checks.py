"""Checks of tools/train.py and tools/test.py (not a script): typos in a
config or in ``--cfg-options`` stop the run before anything is built, in
one line with a did-you-mean; :func:`user_errors` ends the other errors a
user can fix in one line."""
import contextlib
import copy
import difflib
import importlib.util
import inspect
import logging
import os.path as osp
import traceback
import warnings
from typing import Iterable, List, Optional, Set

from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import (EpochBasedTrainLoop, IterBasedTrainLoop, Runner,
                             TestLoop, ValLoop)

# Top-level keys read after the config file was parsed (by the Runner,
# mmseg's tools or ours); any other one is a variable of the file.
RUNTIME_KEYS = frozenset(
    set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
    | {
        'runner_type', 'model_wrapper_cfg', 'compile', 'strategy', 'sync_bn',
        'find_unused_parameters', 'efficient_conv_bn_eval',
        'activation_checkpointing', 'tta_model', 'tta_pipeline',
        'test_pipeline', 'demo_data'
    })


class ConfigError(ValueError):
    """A config setting or override that would fail late or do nothing."""


# Raised on purpose by the package or the tools, these name the file or
# setting and the fix; the same types raised elsewhere are bugs.
USER_ERRORS = (ValueError, OSError, RuntimeError, ImportError,
               FloatingPointError)
_OUR_DIRS = tuple(
    osp.dirname(path) + osp.sep
    for path in (importlib.util.find_spec('mmseg_convlora').origin, __file__))


@contextlib.contextmanager
def user_errors(debug: bool = False):
    """Exit with ``error: <message>`` instead of a traceback (which goes
    to the run's log file) when the package or the tools raise a
    :data:`USER_ERRORS` error, unless ``debug``."""
    try:
        yield
    except USER_ERRORS as err:
        where = traceback.extract_tb(err.__traceback__, limit=-1)[0]
        if debug or not where.filename.startswith(_OUR_DIRS):
            raise
        record = logging.LogRecord(
            'mmengine', logging.ERROR, '', 0, ''.join(
                traceback.format_exception(type(err), err, err.__traceback__)),
            None, None)
        for handler in MMLogger.get_current_instance().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        raise SystemExit(f'error: {err}') from None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, else
    ``''``; case is ignored."""
    choices = sorted(set(choices))
    lower = {c.lower(): c for c in choices}
    near = difflib.get_close_matches(word.lower(), list(lower), n=1)
    return f' (did you mean {lower[near[0]]!r}?)' if near else ''


def _paths_of(value, node, prefix: str = '') -> List[str]:
    """Dotted paths below ``node`` whose value equals ``value``."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, (list, tuple)) else ()
    for key, child in items:
        path = f'{prefix}{key}'
        if isinstance(node, (list, tuple)) and not isinstance(child, dict):
            continue  # --cfg-options reaches list items by index in dicts
        if child == value:
            found.append(path)
        elif isinstance(child, (dict, list, tuple)):
            found += _paths_of(value, child, path + '.')
    return found


def check_overrides(cfg: Config,
                    keys: Iterable[str],
                    handled: Iterable[str] = ()) -> None:
    """Refuse ``--cfg-options`` keys that reach nothing: top-level keys the
    config does not have, and its variables; ``handled`` are top-level keys
    the tools apply themselves."""
    handled = set(handled)
    known = set(cfg.keys()) | RUNTIME_KEYS | handled
    for key in keys:
        top = key.split('.')[0]
        if top in RUNTIME_KEYS or top in handled:
            continue
        if top not in cfg:
            raise ConfigError(
                f'--cfg-options {key}: the config has no key {top!r}'
                f'{did_you_mean(top, known)}, so the override would reach '
                'nothing.')
        value = cfg[top]
        sources = RUNTIME_KEYS & set(cfg.keys())
        if 'data_preprocessor' in (cfg.get('model') or {}):
            sources -= {'data_preprocessor'}  # the model's own wins
        # numbers as common as 0 and 1 (or flags) would point anywhere
        holders = [] if value in (None, True, False, 0, 1) else [
            p for k in sorted(sources) for p in _paths_of(value, {k: cfg[k]})
        ]
        hint = f' Override where its value went instead, e.g. ' \
            f'{", ".join(holders[:3])}.' if holders else ''
        raise ConfigError(
            f'--cfg-options {key}: {top!r} is a variable of the config '
            'file; the settings built from it were made when the file was '
            f'read, so the override would reach nothing.{hint} Or edit '
            f'{top} in the config file.')


def _loop_class(key: str, loop: dict):
    """The loop class ``key`` (``train_cfg``, ...) builds."""
    from mmseg.registry import LOOPS
    if 'type' in loop:
        kind = loop['type']
        if not isinstance(kind, str):
            return kind
        cls = LOOPS.get(kind)
        if cls is None:
            names = set(LOOPS.module_dict) | set(
                LOOPS.parent.module_dict if LOOPS.parent else ())
            raise ConfigError(f'{key}: unknown loop type {kind!r}'
                              f'{did_you_mean(kind, names)}.')
        return cls
    if key != 'train_cfg':
        return ValLoop if key == 'val_cfg' else TestLoop
    if 'by_epoch' not in loop:
        raise ConfigError(
            f"{key} needs type='EpochBasedTrainLoop' (or another loop) or "
            'by_epoch=True/False.')
    return EpochBasedTrainLoop if loop['by_epoch'] else IterBasedTrainLoop


def check_loops(cfg: Config) -> None:
    """Refuse arguments of ``train_cfg``, ``val_cfg`` and ``test_cfg``
    that their loop does not take."""
    for key in ('train_cfg', 'val_cfg', 'test_cfg'):
        loop = cfg.get(key)
        if not isinstance(loop, dict):
            continue
        cls = _loop_class(key, loop)
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            continue
        takes = set(params) - {'self', 'runner'}
        for arg in loop:
            if arg not in takes | {'type', 'by_epoch'}:
                raise ConfigError(
                    f'{key}.{arg}: {cls.__name__} has no argument {arg!r}'
                    f'{did_you_mean(arg, takes)}; it takes '
                    f'{", ".join(sorted(takes - {"dataloader"}))}.')


def _dataset_meta(dataset: dict) -> dict:
    """``metainfo`` of a dataset config without building it."""
    from mmseg.registry import DATASETS
    while 'type' in dataset and ('datasets' in dataset
                                 or 'dataset' in dataset):  # wrappers
        inner = dataset.get('datasets') or [dataset['dataset']]
        dataset = inner[0]
    kind = dataset.get('type')
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    meta = copy.deepcopy(dict(getattr(cls, 'METAINFO', None) or {}))
    meta.update(dataset.get('metainfo') or {})
    return meta


def _dry_samples(num_classes: int) -> List[dict]:
    """One 8x8 sample per kind of head: binary probabilities (two
    classes), then per-class scores; every class in the ground truth."""
    import torch
    gt = (torch.arange(64) % num_classes).reshape(1, 8, 8)
    one_hot = torch.eye(num_classes)[gt[0]].permute(2, 0, 1)
    scores = [gt.float() * 0.8 + 0.1, one_hot] if num_classes == 2 \
        else [one_hot]
    samples = []
    for score in scores:
        pred = (score > 0.5).long() if len(score) == 1 \
            else score.argmax(0, keepdim=True)
        samples.append(
            dict(
                seg_logits=dict(data=score),
                pred_sem_seg=dict(data=pred),
                gt_sem_seg=dict(data=gt),
                img_path='dry_run.png',
                seg_map_path='dry_run.png',
                ori_shape=(8, 8),
                img_shape=(8, 8)))
    return samples


def metric_keys(evaluator, dataset: dict) -> Optional[Set[str]]:
    """The keys the ``evaluator`` config reports on ``dataset`` (a dataset
    config), from its metrics on a made-up 8x8 sample; None when a metric
    cannot take one."""
    from mmseg.registry import METRICS
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if not isinstance(evaluator, (list, tuple)):
        evaluator = [evaluator]
    meta = _dataset_meta(dataset)
    num_classes = len(meta.get('classes') or ()) or 2
    keys: Set[str] = set()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # the metrics' tables and notes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for metric_cfg in evaluator:
                metric = METRICS.build(copy.deepcopy(metric_cfg))
                metric.dataset_meta = meta
                for sample in _dry_samples(num_classes):
                    metric.results.clear()
                    try:
                        metric.process({}, [sample])
                        keys |= set(metric.evaluate(1))
                        break
                    except Exception:  # another kind of head, or no dry run
                        continue
                else:
                    return None
    finally:
        logging.disable(previous)
    return keys


def validation_keys(cfg: Config) -> Optional[Set[str]]:
    """The metric keys validation reports (``<set>/<key>`` for several
    named sets); None when there is no validation or a metric cannot be
    dry-run."""
    val_cfg, loader = cfg.get('val_cfg'), cfg.get('val_dataloader')
    evaluator = cfg.get('val_evaluator')
    if not isinstance(val_cfg, dict) or not loader:
        return None
    cls = _loop_class('val_cfg', val_cfg)
    if not getattr(cls, '_build_sets', None):  # one set
        return metric_keys(evaluator, loader['dataset'])
    entries = list(loader) if isinstance(loader, (list, tuple)) else \
        [loader] + list(loader.get('extra_sets', []))
    names = val_cfg.get('names') or [e.get('name') for e in entries]
    keys: Set[str] = set()
    for name, entry in zip(names, entries):
        found = metric_keys(
            entry.get('evaluator', evaluator), entry['dataset'])
        if found is None:
            return None
        keys |= {f'{name}/{k}' for k in found}
    return keys


def check_save_best(cfg: Config) -> None:
    """Refuse a checkpoint ``save_best`` that validation does not report
    (mmengine's CheckpointHook would fail after the first epoch)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    names = hook.get('save_best') or []
    names = [
        n for n in ([names] if isinstance(names, str) else names)
        if n != 'auto'
    ]
    keys = validation_keys(cfg) if names else None
    for name in names if keys else []:
        if name not in keys:
            raise ConfigError(
                f'default_hooks.checkpoint.save_best={name!r} is not a '
                f'validation metric{did_you_mean(name, keys)}; the '
                f'val_evaluator reports {", ".join(sorted(keys))}.')


def check_config(cfg: Config, training: bool = True) -> None:
    """Check the loop arguments and, for training, ``save_best``."""
    check_loops(cfg)
    if training:
        check_save_best(cfg)
