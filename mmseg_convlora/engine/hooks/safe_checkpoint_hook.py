"""mmengine's ``CheckpointHook``, made safe against kills, full disks,
copied work dirs and two runs in one work dir."""
import glob
import math
import os
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmseg.registry import HOOKS

from ..atomic_files import TMP_MARK, atomic_write
from ..mmengine_private import (CheckpointHookSeam, resume_request,
                                set_resume_checkpoint)
from ..runner.checkpoint_files import (POINTER, find_resume_checkpoint,
                                       resolve_stored_path, stored_path,
                                       verify_checkpoint)
from ..runner.work_dir_lock import WorkDirLock

__all__ = ['SafeCheckpointHook']

_PATH_KEYS = ('last_ckpt', 'best_ckpt')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHookSeam):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment.

    The configs select it in ``configs/_base_/default_runtime.py``
    (``default_hooks.checkpoint.type``). Same arguments and files as
    mmengine's hook, and:

    * **Atomic files.** Checkpoints and the ``last_checkpoint`` pointer are
      written to a hidden temporary file and renamed into place (local work
      dirs; other storage backends are used as configured). Temporary files
      left by a killed save are removed at the next start.
    * **Nothing deleted before its replacement is complete.** A new
      checkpoint is verified (:func:`verify_checkpoint`: zip directory and
      CRCs) before the pointer names it and before older checkpoints
      (``max_keep_ckpts``) or the previous best checkpoint are deleted.
      mmengine deletes both *before* writing the new file.
    * **Paths relative to the work dir.** The pointer and the paths a
      checkpoint records (``last_ckpt``, ``best_ckpt``) are relative to the
      work dir, so a copied or moved work dir resumes from, and deletes,
      its own files only.
    * **Resume from what is there.** With ``resume=True`` (``--resume``)
      it picks the checkpoint before mmengine loads it
      (:func:`find_resume_checkpoint`): the pointer's file if complete,
      else the newest complete ``epoch_N``/``iter_N`` checkpoint; nothing
      to resume from, or an incomplete explicit checkpoint, is an error
      naming the work dir or file.
    * **One run per work dir.** Training takes an exclusive lock on the
      work dir (:class:`WorkDirLock`); a second run is refused with a
      message naming the first.
    * **A best checkpoint that cannot be saved is explained.** A NaN
      ``save_best`` metric (e.g. a validation set without foreground) is
      warned about once, naming the metric and the validation data.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock: Optional[WorkDirLock] = None
        self._warned_nan = False

    # ------------------------------------------------------------ start-up
    def before_run(self, runner) -> None:
        resume, load_from = resume_request(runner)
        if resume:
            set_resume_checkpoint(
                runner, find_resume_checkpoint(runner.work_dir, load_from))

    def before_train(self, runner) -> None:
        if is_main_process():
            self._lock = WorkDirLock(runner.work_dir)
            self._lock.acquire()
        out_dir = self.out_dir if isinstance(self.out_dir, str) \
            else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)
        self._resolve_resumed_paths(runner)
        if is_main_process():
            self._remove_stale_temp_files(runner)

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _resolve_resumed_paths(self, runner) -> None:
        """Make the paths a resumed checkpoint recorded point into this
        work dir (see :func:`resolve_stored_path`)."""

        def resolve(path):
            return resolve_stored_path(path, runner.work_dir, self.out_dir)

        hub = runner.message_hub
        for key in list(hub.runtime_info):
            if key.startswith(_PATH_KEYS) and hub.get_info(key):
                hub.update_info(key, resolve(hub.get_info(key)))
        if getattr(self, 'best_ckpt_path', None):
            self.best_ckpt_path = resolve(self.best_ckpt_path)
        for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
            self.best_ckpt_path_dict[key] = resolve(path)

    def _remove_stale_temp_files(self, runner) -> None:
        folders = {str(runner.work_dir)}
        if isinstance(self.out_dir, str) and '://' not in self.out_dir:
            folders.add(self.out_dir)
        for folder in folders:
            pattern = osp.join(glob.escape(folder), '.*' + TMP_MARK + '*')
            for path in glob.glob(pattern):
                try:
                    os.unlink(path)
                    runner.logger.info(
                        f'Removed {path}, left by a save that was killed.')
                except OSError:
                    pass

    # ------------------------------------------------------------ saving
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if not isinstance(hub, dict) or 'runtime_info' not in hub:
            return
        info = dict(hub['runtime_info'])
        for key, value in info.items():
            if key.startswith(_PATH_KEYS) and isinstance(value, str):
                info[key] = stored_path(value, runner.work_dir)
        checkpoint['message_hub'] = dict(hub, runtime_info=info)

    def _local(self) -> bool:
        return '://' not in str(self.out_dir)

    def save_checkpoint_step(self, runner, step: int, meta: dict) -> None:
        """Save, verify, point at it, then delete what it replaces."""
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        if self._local():
            verify_checkpoint(self.last_ckpt)
        atomic_write(
            osp.join(runner.work_dir, POINTER),
            stored_path(str(self.last_ckpt), runner.work_dir).encode())
        for old_step in outdated:
            self._remove(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(old_step)))

    def _remove(self, path: str) -> None:
        if path == self.last_ckpt:
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed checkpoints
            self.file_backend.rmtree(path)

    # ------------------------------------------------------------ best
    def _best_paths(self) -> Dict[Optional[str], Optional[str]]:
        if not self.save_best:
            return {}
        if len(self.key_indicators) == 1:
            return {None: self.best_ckpt_path}
        return dict(self.best_ckpt_path_dict)

    def _set_best_paths(self, paths: Dict[Optional[str],
                                          Optional[str]]) -> None:
        for key, path in paths.items():
            if key is None:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path

    def after_val_epoch(self, runner, metrics) -> None:
        """Save a new best checkpoint as mmengine does, but delete the
        previous one only once the new one is complete."""
        self._warn_nan_best(runner, metrics)
        previous = self._best_paths()
        # with no previous path recorded, mmengine deletes nothing
        self._set_best_paths({k: None for k in previous})
        try:
            super().after_val_epoch(runner, metrics)
        except BaseException:
            self._set_best_paths(previous)
            raise
        current = self._best_paths()
        for key, old in previous.items():
            new = current.get(key)
            if new is None:
                self._set_best_paths({key: old})
            elif old and old != new and is_main_process():
                if self._local():
                    verify_checkpoint(new)
                self._remove(old)
                runner.logger.info(
                    f'The previous best checkpoint {old} is removed.')

    def _warn_nan_best(self, runner, metrics: dict) -> None:
        if self._warned_nan or not self.save_best or not metrics:
            return
        keys = [k for k in self.key_indicators if k != 'auto'] or \
            [next(iter(metrics))]
        nan = [
            k for k in keys
            if isinstance(metrics.get(k), float) and math.isnan(metrics[k])
        ]
        if not nan:
            return
        self._warned_nan = True
        dataset = getattr(
            getattr(runner, 'val_dataloader', None), 'dataset', None)
        prefix = getattr(dataset, 'data_prefix', None) or {}
        where = prefix.get('seg_map_path') or prefix.get('img_path')
        data = (f'the validation masks in {where!r} ({len(dataset)} images)'
                if where and dataset is not None else 'the validation set')
        runner.logger.warning(
            f'{", ".join(nan)} is NaN after validation, so no best '
            'checkpoint can be saved (NaN is never better). A metric is '
            'NaN when the whole validation set has no foreground pixel (or '
            f'only ignored pixels): check {data}. Give the validation split '
            'some foreground images, or choose another metric with '
            'default_hooks.checkpoint.save_best. The regular checkpoints '
            'are saved as usual. (Warned once.)')
