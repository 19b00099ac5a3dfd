"""Resume after a crash exactly where training stopped, from a checkpoint
that is never half-written.

Two things mmengine 0.10 leaves open:

* **RNG state.** ``--resume`` restores weights, optimizer, schedulers and
  the iteration counter, but not the random number generators; a resumed
  run draws other random numbers (Conv-LoRA's gate noise, augmentation)
  than the uninterrupted one would have.
* **Crash-safe checkpoints.** ``CheckpointHook`` writes the file in place,
  deletes the previous checkpoint (``max_keep_ckpts=1`` in our schedules)
  *before* writing the new one, and rewrites ``last_checkpoint`` in place: a
  kill at the wrong moment leaves a truncated "latest" and no older one.

:class:`ExactResumeHook` (in every config through
``configs/_base_/default_runtime.py``) fixes both; :class:`SafeCheckpointHook`
is the crash-safe ``CheckpointHook`` it installs.
"""
import glob
import os
import os.path as osp
import random
import tempfile
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import HOOKS

__all__ = [
    'atomic_write', 'AtomicLocalBackend', 'SafeCheckpointHook',
    'ExactResumeHook', 'get_rng_state', 'set_rng_state'
]

_TMP_MARK = '.tmp-'


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _write_all(f, data: bytes) -> None:
    """Write ``data`` to the open file ``f`` (a seam for tests)."""
    f.write(data)


def _fsync_dir(dirname: str) -> None:
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always either the old
    file or the complete new one.

    The bytes go to a hidden temporary file in the same folder
    (``.<name>.tmp-XXXX``), are flushed and fsynced, and the file is renamed
    over ``path`` with :func:`os.replace` (atomic on POSIX and Windows); the
    folder is fsynced so the rename survives a power cut. On an error the
    temporary file is removed; after a kill it is left behind, hidden, and
    removed by :class:`SafeCheckpointHook` at the next start.
    """
    path = str(path)
    dirname = osp.dirname(osp.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(path) + _TMP_MARK, dir=dirname)
    os.close(fd)
    try:
        with open(tmp, 'wb') as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(dirname)


@register_backend('atomic_local', force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic :meth:`put`/:meth:`put_text`
    (see :func:`atomic_write`). Select it with
    ``backend_args=dict(backend='atomic_local')``."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj.encode(encoding))


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment.

    Same arguments and files as mmengine's hook, except that

    * checkpoint files and the ``last_checkpoint`` pointer are written
      atomically (:func:`atomic_write`; local work dirs only, other storage
      backends are used as configured);
    * the pointer names the new checkpoint only once it is complete, and
      checkpoints beyond ``max_keep_ckpts`` are deleted only after that, so
      there is always one complete checkpoint that ``--resume`` finds;
    * hidden temporary files left by a killed save are removed at start.

    :class:`ExactResumeHook` turns the configs' ``CheckpointHook`` into this
    class, so configs need not name it.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if isinstance(self.out_dir, str) \
            else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)
        if is_main_process():
            self._remove_stale_temp_files(runner)

    def _remove_stale_temp_files(self, runner) -> None:
        folders = {str(runner.work_dir)}
        if isinstance(self.out_dir, str) and '://' not in self.out_dir:
            folders.add(self.out_dir)
        for folder in folders:
            for path in glob.glob(osp.join(folder, '.*' + _TMP_MARK + '*')):
                try:
                    os.unlink(path)
                    runner.logger.info(
                        f'Removed {path}, left by a save that was killed.')
                except OSError:
                    pass

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        outdated = []
        if self.max_keep_ckpts > 0:
            if len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step:
                pass
            else:
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    outdated.append(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids',
                                               list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        # the checkpoint is complete: point at it, then drop outdated ones
        atomic_write(
            osp.join(runner.work_dir, 'last_checkpoint'),
            str(self.last_ckpt).encode('utf-8'))
        for old_step in outdated:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old_step))
            if path == self.last_ckpt:
                continue
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed checkpoints
                self.file_backend.rmtree(path)


# --------------------------------------------------------------------- RNG
def get_rng_state() -> dict:
    """The state of torch's (CPU and CUDA), numpy's and Python's global
    generators, as tensors and plain Python values (loadable with
    ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(kind=str(kind),
                   keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   gauss=float(gauss)),
        python=dict(version=int(version), internal=list(internal),
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
    """Make ``--resume`` continue exactly and from a sound checkpoint.

    * **RNG.** Saves the random generators' state in each checkpoint
      (``checkpoint['rng_state']``) and restores it when training resumes,
      at the point where the uninterrupted run was: before the next epoch
      (epoch-based loops: torch, CUDA, numpy, Python) or before the next
      iteration (iteration-based loops: torch and CUDA; numpy and Python
      drive the data pipeline, which mmengine replays when it skips the
      batches already trained). To make that exact, validation does not
      consume the training RNG (its state is put back after each
      validation), and the training dataloader draws its worker base seeds
      from its own generator instead of torch's global one. With
      deterministic kernels a resumed run then ends with the same weights
      as an uninterrupted one, Conv-LoRA's noisy gate included.
    * **Crash-safe checkpoints.** Turns the runner's ``CheckpointHook`` into
      :class:`SafeCheckpointHook` (atomic writes, pointer updated after the
      file is complete, old checkpoints deleted last).

    Under DDP rank 0 saves the checkpoint, so its RNG state is the one saved
    and every rank restores it; with the default
    ``randomness.diff_rank_seed=False`` all ranks draw the same stream, so
    that is exact. With ``diff_rank_seed=True`` ranks other than 0 are
    re-seeded instead (resume is then exact on rank 0 only).

    Args:
        rng (bool): Save and restore the RNG state. Default True.
        safe_checkpoints (bool): Install :class:`SafeCheckpointHook`.
            Default True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, rng: bool = True, safe_checkpoints: bool = True):
        self.rng = rng
        self.safe_checkpoints = safe_checkpoints
        self._pending: Optional[dict] = None
        self._val_stash: Optional[dict] = None

    # ---------------------------------------------------- safe checkpoints
    def before_run(self, runner) -> None:
        if not self.safe_checkpoints:
            return
        for hook in runner.hooks:
            if type(hook) is CheckpointHook:
                # same state, safer methods (SafeCheckpointHook adds no
                # attributes of its own)
                hook.__class__ = SafeCheckpointHook

    # ------------------------------------------------------------- RNG
    def before_train(self, runner) -> None:
        if not self.rng:
            return
        loader = getattr(runner.train_loop, 'dataloader', None)
        if isinstance(loader, torch.utils.data.DataLoader) and \
                loader.generator is None:
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
        if not self.rng or not getattr(runner, '_resume', False):
            return
        state = checkpoint.get('rng_state')
        if state is None:
            print_log(
                'The resumed checkpoint holds no RNG state (written without '
                'ExactResumeHook): training continues with fresh random '
                'numbers, so it will not repeat the interrupted run exactly.',
                logger='current')
            return
        self._pending = state

    def _restore(self, runner, torch_only: bool) -> None:
        state, self._pending = self._pending, None
        rank, world_size = get_dist_info()
        diff_rank_seed = getattr(runner, '_randomness_cfg', {}).get(
            'diff_rank_seed', False)
        if diff_rank_seed and rank > 0:
            seed = int(torch.initial_seed()) + 1000003 * (runner.iter + 1)
            torch.manual_seed(seed % (2**63))
            return
        set_rng_state(state, torch_only=torch_only)
        runner.logger.info(
            'Restored the RNG state of the checkpoint (' +
            ('torch' if torch_only else 'torch, numpy, python') + ').')

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None and isinstance(runner.train_loop,
                                                    EpochBasedTrainLoop):
            self._restore(runner, torch_only=False)

    def before_train_iter(self, runner, batch_idx: int,
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
