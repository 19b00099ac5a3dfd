import random

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import HOOKS

from ..mmengine_private import randomness_cfg

_NUMPY_STATE = ('kind', 'keys', 'pos', 'has_gauss', 'gauss')


def get_rng_state() -> dict:
    """torch's (CPU, CUDA), numpy's and Python's generator states, as
    tensors and plain Python values."""
    numpy = dict(zip(_NUMPY_STATE, np.random.get_state()))  # plain values
    numpy['keys'] = torch.from_numpy(numpy['keys'].astype(np.int64))
    version, internal, gauss_next = random.getstate()
    python = dict(
        version=version, internal=list(internal), gauss_next=gauss_next)
    state = dict(torch=torch.get_rng_state(), numpy=numpy, python=python)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, torch_only: bool = False) -> None:
    """Restore what :func:`get_rng_state` returned (``torch_only``: not
    numpy's and Python's, which drive the data pipeline)."""
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda[0])
    if torch_only:
        return
    np_state = dict(state['numpy'])
    np_state['keys'] = np_state['keys'].numpy().astype(np.uint32)
    np.random.set_state(tuple(np_state[k] for k in _NUMPY_STATE))
    py = state['python']
    random.setstate((py['version'], tuple(py['internal']), py['gauss_next']))


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``--resume`` continue exactly where training stopped (the RNG
    state in ``checkpoint['rng_state']``; see ``docs/faults.md``)."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self._loaded = self._pending = self._val_stash = None

    def before_run(self, runner) -> None:
        for hook in runner.hooks:
            if type(hook) is CheckpointHook:
                runner.logger.warning(
                    "default_hooks.checkpoint is mmengine's CheckpointHook "
                    "(not crash-safe); use type='SafeCheckpointHook' as "
                    'configs/_base_/default_runtime.py does.')

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        resumed = runner.iter > 0 or runner.epoch > 0
        if resumed and loaded is not None:
            self._pending = loaded.get('rng_state')
            if self._pending is None:
                print_log(
                    'The resumed checkpoint holds no RNG state (written '
                    'without ExactResumeHook): the run continues, not '
                    'exactly as the interrupted one would have.', 'current')
        loader = getattr(runner.train_loop, 'dataloader', None)
        if not isinstance(loader, torch.utils.data.DataLoader):
            return
        if resumed and loader.persistent_workers and \
                loader.num_workers > 0 and isinstance(
                    runner.train_loop, EpochBasedTrainLoop):
            runner.logger.warning(
                'Persistent dataloader workers restart their augmentations '
                'from the seed on resume: set train_dataloader.'
                'persistent_workers=False for an exact resume.')
        if loader.generator is None:
            # workers seeded from the loader's own generator leave the global
            # (model's) RNG alone; worker_init_fn reseeds them from the seed
            seed = torch.initial_seed() if runner.seed is None else runner.seed
            loader.generator = torch.Generator().manual_seed(int(seed) % 2**63)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
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

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._pending is not None:
            self._restore(runner, torch_only=True)

    def before_val(self, runner) -> None:
        self._val_stash = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_stash is not None:
            set_rng_state(self._val_stash)
            self._val_stash = None
