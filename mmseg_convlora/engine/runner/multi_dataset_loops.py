import copy
import logging
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop
from mmseg.registry import LOOPS
from prettytable import PrettyTable
from torch.utils.data import DataLoader

from ..mmengine_private import mean_losses, randomness_cfg


def named_sets(dataloader,
               default: Optional[str] = 'test') -> List[Tuple[str, object]]:
    """(name, dataloader) of every set: a list, or one with ``extra_sets``.

    Args:
        dataloader (dict | list | DataLoader): The config value.
        default (str, optional): Name of an unnamed set (``f'{default}{i}'``
            among several); None leaves it None.
    """
    if isinstance(dataloader, (list, tuple)):
        sets = list(dataloader)
    else:
        sets = [dataloader]
        if isinstance(dataloader, dict):
            sets += list(dataloader.get('extra_sets', []))

    def name(i: int, loader) -> Optional[str]:
        given = loader.get('name') if isinstance(loader, dict) else None
        if given or default is None:
            return given
        return default if len(sets) == 1 else f'{default}{i}'

    return [(name(i, loader), loader) for i, loader in enumerate(sets)]


class _MultiDatasetMixin:
    """Named (dataloader, evaluator) pairs, run in turn."""

    _mode = 'test'

    def __init__(self, runner, dataloader, evaluator, names=None, fp16=False):
        self._runner = runner
        self._build_sets(runner, dataloader, evaluator, names)
        self.fp16 = fp16
        setattr(self, f'{self._mode}_loss', dict())

    def run(self) -> dict:
        """Run every set; returns ``{'<name>/<metric>': value}``."""
        mode, per_set = self._mode, {}
        self.runner.call_hook(f'before_{mode}')
        self.runner.call_hook(f'before_{mode}_epoch')
        self.runner.model.eval()
        for i, name in enumerate(self.names):
            self._select(i)
            self.current_name, num = name, len(self.dataloader.dataset)
            print_log(
                f'{mode} set {name!r} ({i + 1}/{len(self.names)}, '
                f'{num} images)', 'current')
            setattr(self, f'{mode}_loss', dict())
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch)
            metrics = per_set[name] = self.evaluator.evaluate(num)
            losses = getattr(self, f'{mode}_loss')
            if losses:
                metrics.update(mean_losses(losses, mode))
            values = ', '.join(f'{k}: {_fmt(v)}' for k, v in metrics.items())
            print_log(f'{mode} set {name!r}: {values}', 'current')
        self.current_name = None
        print_log(summary_table(per_set, mode), logger='current')
        metrics = dict(
            (f'{n}/{k}', v) for n, m in per_set.items() for k, v in m.items())
        self.runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{mode}')
        return metrics

    def _build_sets(self, runner, dataloader, evaluator,
                    names: Optional[Sequence[str]]) -> None:
        entries = named_sets(dataloader, default=None)
        cls, mode = type(self).__name__, self._mode
        if not entries:
            raise ValueError(
                f'{cls}: {mode}_dataloader is an empty list; give one '
                'dataloader config per test set.')
        if names is not None and len(names) != len(entries):
            raise ValueError(f'{cls}: {len(names)} names for '
                             f'{len(entries)} dataloaders.')
        diff_rank_seed = randomness_cfg(runner).get('diff_rank_seed', False)
        self.names, self.dataloaders, self.evaluators = [], [], []
        for i, (name, entry) in enumerate(entries):
            ev_cfg = evaluator
            if isinstance(entry, dict):
                entry = copy.deepcopy(entry)
                for key in ('name', 'extra_sets'):
                    entry.pop(key, None)
                ev_cfg = entry.pop('evaluator', evaluator)
                loader = runner.build_dataloader(
                    entry, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            elif isinstance(entry, DataLoader):
                loader = entry
            else:
                raise TypeError(f'{cls}: entry {i} of {mode}_dataloader is '
                                f'a {type(entry).__name__}, not a dict or '
                                'DataLoader.')
            name = names[i] if names is not None else name
            if not name:
                raise ValueError(f"{cls}: {mode} set {i} has no name; add "
                                 "name='...' to its dataloader config.")
            name = str(name)
            if '/' in name:
                raise ValueError(f'{mode} set name {name!r} must not '
                                 "contain '/' (it separates name and metric).")
            if name in self.names:
                raise ValueError(f'{mode} set name {name!r} is used '
                                 'twice; names must be unique.')
            if ev_cfg is None:
                raise ValueError(f'{cls}: no evaluator for {mode} set '
                                 f'{name!r}; set {mode}_evaluator or '
                                 'evaluator=... in its dataloader config.')
            self.names.append(name)
            self.dataloaders.append(loader)
            # one Evaluator per test set: metrics keep per-set state
            self.evaluators.append(
                ev_cfg if isinstance(ev_cfg, Evaluator) else runner.
                build_evaluator(copy.deepcopy(ev_cfg)))
        self._select(0)
        self.current_name: Optional[str] = None

    def _select(self, i: int) -> None:
        # mmengine's timer and logger hooks read self.dataloader
        self.dataloader = self.dataloaders[i]
        self.evaluator = self.evaluators[i]
        dataset = self.dataloader.dataset
        if hasattr(dataset, 'metainfo'):
            self.evaluator.dataset_meta = dataset.metainfo
            self.runner.visualizer.dataset_meta = dataset.metainfo
        else:
            print_log(
                f'Dataset {type(dataset).__name__} has no metainfo; '
                '``dataset_meta`` in the evaluator and visualizer is None.',
                logger='current',
                level=logging.WARNING)


def _fmt(value) -> str:
    return f'{value:.4f}' if isinstance(value, float) else str(value)


def summary_table(per_set: Dict[str, dict], mode: str = 'test') -> str:
    """One row per set, one column per scalar metric."""
    numbers = [
        k for m in per_set.values() for k, v in m.items()
        if isinstance(v, (int, float))
    ]
    keys = list(dict.fromkeys(numbers))
    table = PrettyTable([f'{mode} set'] + keys, align='l')
    for name, m in per_set.items():
        table.add_row([name] + [_fmt(m[k]) if k in m else '-' for k in keys])
    return 'per-set results:\n' + table.get_string()


@LOOPS.register_module()
class MultiDatasetTestLoop(_MultiDatasetMixin, TestLoop):
    """Test one model on several named test sets in one run: metrics as
    ``<name>/<metric>``, one test epoch for hooks (``current_name``: the set).

    Args:
        runner (Runner): The runner.
        dataloader (list[dict | DataLoader] | dict): The test sets.
        evaluator (dict | list | Evaluator): Default evaluator config.
        names (Sequence[str], optional): Names overriding the ``name`` keys.
            Defaults to None.
        fp16 (bool): Autocast the forward. Defaults to False.
    """

    _mode = 'test'


@LOOPS.register_module()
class MultiDatasetValLoop(_MultiDatasetMixin, ValLoop):
    """:class:`MultiDatasetTestLoop` for ``val_dataloader`` / ``val_cfg``
    (pick the checkpoint with e.g. ``save_best='Kvasir/Sm'``)."""

    _mode = 'val'
