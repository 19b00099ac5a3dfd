import glob
import math
import os
import os.path as osp

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmengine.runner import EpochBasedTrainLoop
from mmengine.utils import apply_to
from mmseg.registry import HOOKS

from ..atomic_files import TMP_MARK, atomic_write
from ..mmengine_private import (resume_request, save_checkpoint_at,
                                set_resume_checkpoint)
from ..runner.checkpoint_files import (POINTER, CheckpointFileError,
                                       find_resume_checkpoint,
                                       resolve_stored_path, stored_path,
                                       verify_checkpoint)
from ..runner.work_dir_lock import WorkDirLock

_PATH_KEYS = ('last_ckpt', 'best_ckpt')
#: runtime info: the last validated epoch/iteration (no ``val`` prefix: logged)
VALIDATED = 'last_validated'


def _plain(obj):
    """``obj`` with numpy values turned into Python ones (recursively)."""
    return apply_to(obj, lambda x: isinstance(x, (np.generic, np.ndarray)),
                    lambda x: x.tolist())


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with atomic, verified checkpoints (same
    arguments and files; see ``docs/faults.md``)."""

    def __init__(self, *args, max_keep_ckpts: int = -1, **kwargs):
        # mmengine deletes the oldest checkpoint before it writes the new one:
        # it keeps one more, deleted here once the new one is verified
        self.keep = max_keep_ckpts
        kwargs['max_keep_ckpts'] = max_keep_ckpts + (max_keep_ckpts > 0)
        super().__init__(*args, **kwargs)
        self._lock = self._pointer = None
        self._saved = self._warned_nan = False

    def before_run(self, runner) -> None:
        resume, load_from = resume_request(runner)
        if resume:
            set_resume_checkpoint(
                runner, find_resume_checkpoint(runner.work_dir, load_from))

    def before_train(self, runner) -> None:
        if is_main_process():
            self._lock = WorkDirLock(runner.work_dir)
            self._lock.acquire()
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(self.out_dir)):  # work_dir is local
            self.backend_args = dict(backend='atomic_local')
        super().before_train(runner)

        def resolve(path):
            return resolve_stored_path(path, runner.work_dir, self.out_dir)

        hub = runner.message_hub
        for key in list(hub.runtime_info):
            if key.startswith(_PATH_KEYS) and hub.get_info(key):
                hub.update_info(key, resolve(hub.get_info(key)))
        best = self._best_paths()
        self._set_best_paths({k: resolve(p) for k, p in best.items()})
        if is_main_process():
            for folder in {runner.work_dir, self.out_dir}:
                if '://' in folder:
                    continue
                for path in glob.glob(
                        osp.join(glob.escape(folder), '.*' + TMP_MARK + '*')):
                    os.unlink(path)
                    runner.logger.info(
                        f'Removed {path}, left by a killed save.')
        step, due = self._validation_due(runner)
        if self.save_best and due and \
                runner.message_hub.get_info(VALIDATED) != step:
            runner.logger.info(
                'The checkpoint resumed from was saved before the validation '
                'after it finished (interrupted?): validating again, as the '
                'best checkpoint depends on it.')
            self.last_ckpt = hub.get_info('last_ckpt')  # saved again after
            runner.val_loop.run()

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        pointer = osp.join(runner.work_dir, POINTER)
        if not self._saved and is_main_process():
            # mmengine overwrites it after the save, before verification
            self._pointer = open(pointer).read() if osp.isfile(
                pointer) else None
        self._saved = True
        hub = checkpoint.get('message_hub')
        if isinstance(hub, dict) and 'log_scalars' in hub:
            info, scalars = dict(hub['runtime_info']), {}
            for k, v in info.items():
                if k.startswith(_PATH_KEYS) and isinstance(v, str):
                    info[k] = stored_path(v, runner.work_dir)
            for k, buf in hub['log_scalars'].items():
                scalars[k] = dict(
                    zip(('log_history', 'count_history'), buf.data),
                    max_length=buf.max_length)
            checkpoint['message_hub'] = _plain(
                dict(hub, runtime_info=info, log_scalars=scalars))
        checkpoint['meta'] = _plain(checkpoint.get('meta', {}))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, value in scalars.items():
            if isinstance(value, dict):
                scalars[key] = HistoryBuffer(**value)

    def after_train_iter(self, runner, *args, **kwargs) -> None:
        self._saved = False
        super().after_train_iter(runner, *args, **kwargs)
        self._finish_save(runner)

    def after_train_epoch(self, runner) -> None:
        self._saved = False
        super().after_train_epoch(runner)
        self._finish_save(runner)

    def after_val_epoch(self, runner, metrics) -> None:
        """Save a new best checkpoint as mmengine does; delete the previous
        one once the new one is verified; then save the step's checkpoint
        again, recording the validation (mmengine saved it before)."""
        self._warn_nan_best(runner, metrics)
        self._saved = False
        previous = self._best_paths()
        # with no previous path recorded, mmengine deletes nothing; with no
        # last checkpoint it does not save it again (done below)
        self._set_best_paths({k: None for k in previous})
        last, self.last_ckpt = self.last_ckpt, None
        current = {}  # stays empty if mmengine fails: previous paths back
        try:
            super().after_val_epoch(runner, metrics)
            current = self._best_paths()
        finally:
            self.last_ckpt = last
            merged = {k: current.get(k) or p for k, p in previous.items()}
            self._set_best_paths(merged)
        for key, old in previous.items():
            new = current.get(key)
            if new and is_main_process():
                self._verify(new)
                if old and old != new:
                    self._remove(old)
                    runner.logger.info(
                        f'The previous best checkpoint {old} is removed.')
        step, due = self._validation_due(runner) if self.save_best and \
            metrics else (None, False)
        if due:
            runner.message_hub.update_info(VALIDATED, step)
            at = runner.epoch if self.by_epoch else runner.iter
            if last is not None and (any(current.values())
                                     or osp.basename(last)
                                     == self.filename_tmpl.format(at)):
                save_checkpoint_at(self, runner, at,
                                   dict(epoch=runner.epoch, iter=runner.iter))
        self._finish_save(runner)

    def _validation_due(self, runner) -> tuple:
        """``(train loop's epoch or iteration, whether it validates next)``."""
        loop = runner.train_loop
        step, last = (loop.epoch, loop.max_epochs) if isinstance(
            loop, EpochBasedTrainLoop) else (loop.iter, loop.max_iters)
        return step, (
            step > 0 and runner.val_loop is not None and step >= loop.val_begin
            and (step % loop.val_interval == 0 or step == last))

    def _finish_save(self, runner) -> None:
        """Verify what was saved, point at it, delete what it replaces."""
        if not self._saved or not is_main_process() or not self.last_ckpt:
            return
        self._saved = False
        pointer = osp.join(runner.work_dir, POINTER)
        try:
            self._verify(self.last_ckpt)
        except CheckpointFileError:
            if self._pointer is None:
                os.remove(pointer)
            else:
                atomic_write(pointer, self._pointer.encode())
            raise
        atomic_write(
            pointer,
            stored_path(str(self.last_ckpt), runner.work_dir).encode())
        if self.keep > 0:
            for step in list(self.keep_ckpt_ids)[:-self.keep]:
                self._remove(
                    self.file_backend.join_path(
                        self.out_dir, self.filename_tmpl.format(step)))

    def _verify(self, path: str) -> None:
        if '://' in str(self.out_dir):
            return
        try:
            verify_checkpoint(path)
        except CheckpointFileError:
            if osp.isfile(path):  # nothing corrupt under a checkpoint's name
                os.remove(path)
            raise

    def _remove(self, path: str) -> None:
        if path == self.last_ckpt:
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed checkpoints
            self.file_backend.rmtree(path)

    def _best_paths(self) -> dict:
        if self.save_best and len(self.key_indicators) == 1:
            return {None: self.best_ckpt_path}
        return dict(getattr(self, 'best_ckpt_path_dict', {}))

    def _set_best_paths(self, paths: dict) -> None:
        if None in paths:
            self.best_ckpt_path = paths[None]
        elif paths:
            self.best_ckpt_path_dict.update(paths)

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
        dataset = getattr(runner.val_dataloader, 'dataset', None)
        prefix = getattr(dataset, 'data_prefix', None) or {}
        where = prefix.get('seg_map_path') or prefix.get('img_path')
        data = (f'the validation masks in {where!r} ({len(dataset)} images)'
                if where and dataset is not None else 'the validation set')
        runner.logger.warning(
            f'{", ".join(nan)} is NaN after validation (no foreground pixel '
            f'in {data}?): no best checkpoint is saved, regular ones are. '
            'Give the validation split foreground images, or choose another '
            'metric (default_hooks.checkpoint.save_best). (Warned once.)')
