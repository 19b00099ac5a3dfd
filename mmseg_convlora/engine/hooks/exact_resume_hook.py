import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import HOOKS

from ..mmengine_private import randomness_cfg


def get_rng_state() -> dict:
    """The state of torch's (CPU, CUDA), numpy's and Python's global
    generators, as tensors and plain Python values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            kind=str(kind),
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            gauss=float(gauss)),
        python=dict(
            version=int(version),
            internal=list(internal),
            gauss_next=gauss_next))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, torch_only: bool = False) -> None:
    """Restore what :func:`get_rng_state` returned.

    Args:
        state (dict): The saved state.
        torch_only (bool): Restore torch's generators only (leave numpy's and
            Python's, which drive the data pipeline, alone).
    """
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda[0])
    if torch_only:
        return
    np_state = state['numpy']
    np.random.set_state(
        (np_state['kind'], np_state['keys'].numpy().astype(np.uint32),
         np_state['pos'], np_state['has_gauss'], np_state['gauss']))
    py = state['python']
    random.setstate((py['version'], tuple(py['internal']), py['gauss_next']))


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``--resume`` continue exactly where training stopped.

    Saves the RNG state in ``checkpoint['rng_state']`` and restores it
    where the uninterrupted run was; see ``docs/faults.md``.

    Args:
        rng (bool): Save and restore the RNG state. Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, rng: bool = True):
        self.rng = rng
        self._loaded: Optional[dict] = None
        self._pending: Optional[dict] = None
        self._val_stash: Optional[dict] = None

    def before_run(self, runner) -> None:
        for hook in runner.hooks:
            if type(hook) is CheckpointHook:
                runner.logger.warning(
                    "default_hooks.checkpoint is mmengine's CheckpointHook, "
                    'which deletes old checkpoints before the new one is '
                    'written and stores absolute paths; use '
                    "type='SafeCheckpointHook' (as "
                    'configs/_base_/default_runtime.py does) for crash-safe '
                    'checkpoints.')

    def before_train(self, runner) -> None:
        if not self.rng:
            return
        loaded, self._loaded = self._loaded, None
        resumed = runner.iter > 0 or runner.epoch > 0
        if resumed and loaded is not None:
            state = loaded.get('rng_state')
            if state is None:
                print_log(
                    'The resumed checkpoint holds no RNG state (written '
                    'without ExactResumeHook): training continues with fresh '
                    'random numbers, so it will not repeat the interrupted '
                    'run exactly.',
                    logger='current')
            else:
                self._pending = state
        loader = getattr(runner.train_loop, 'dataloader', None)
        if not isinstance(loader, torch.utils.data.DataLoader):
            return
        if resumed and loader.persistent_workers and \
                loader.num_workers > 0 and isinstance(
                    runner.train_loop, EpochBasedTrainLoop):
            runner.logger.warning(
                'Resuming with persistent dataloader workers '
                '(train_dataloader.persistent_workers=True): their random '
                'augmentations restart from the seed, so the run will not '
                'repeat the interrupted one exactly. Set '
                'persistent_workers=False for an exact resume.')
        if loader.generator is None:
            # Worker base seeds from the loader's own generator: starting an
            # epoch then leaves the global RNG (the model's) untouched.
            # mmengine's worker_init_fn re-seeds each worker from the run's
            # seed anyway, so the data are unchanged.
            gen = torch.Generator()
            seed = runner.seed if runner.seed is not None else \
                torch.initial_seed()
            gen.manual_seed(int(seed) % (2**63))
            loader.generator = gen

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.rng:
            return
        # a checkpoint saved during validation (best metric) records the
        # training RNG as it was before validation
        checkpoint['rng_state'] = self._val_stash if self._val_stash \
            is not None else get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # kept until before_train, which knows whether this was a resume
        # (the loop's counters are then restored) or load_from
        self._loaded = checkpoint

    def _restore(self, runner, torch_only: bool) -> None:
        state, self._pending = self._pending, None
        rank, _ = get_dist_info()
        if randomness_cfg(runner).get('diff_rank_seed', False) and rank > 0:
            seed = int(torch.initial_seed()) + 1000003 * (runner.iter + 1)
            torch.manual_seed(seed % (2**63))
            return
        set_rng_state(state, torch_only=torch_only)
        runner.logger.info('Restored the RNG state of the checkpoint (' + (
            'torch' if torch_only else 'torch, numpy, python') + ').')

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None and isinstance(runner.train_loop,
                                                    EpochBasedTrainLoop):
            self._restore(runner, torch_only=False)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self._pending is not None:
            self._restore(runner, torch_only=True)

    def before_val(self, runner) -> None:
        if self.rng:
            self._val_stash = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_stash is not None:
            set_rng_state(self._val_stash)
            self._val_stash = None
