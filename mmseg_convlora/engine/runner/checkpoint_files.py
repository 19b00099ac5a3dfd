"""The training checkpoints of a work dir: find, verify, name them."""
import glob
import logging
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional

from mmengine.logging import print_log

POINTER = 'last_checkpoint'
_TRAINING_CKPT = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class CheckpointFileError(RuntimeError):
    """A checkpoint that cannot be used or written, or none where one is
    needed."""


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def _inside(path: str, folder: str) -> bool:
    return osp.abspath(path).startswith(osp.abspath(folder) + os.sep)


def verify_checkpoint(path: str) -> None:
    """Check the zip CRCs of checkpoint ``path`` without loading it.

    Raises:
        CheckpointFileError: Missing, empty, truncated or corrupt.
    """
    if not osp.isfile(path):
        raise CheckpointFileError(f'Checkpoint {path!r} does not exist.')
    if osp.getsize(path) == 0:
        raise CheckpointFileError(f'Checkpoint {path!r} is empty (0 bytes).')
    with open(path, 'rb') as f:
        if f.read(4) != b'PK\x03\x04':
            return  # legacy (pickle) format: nothing cheap to check
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointFileError(
            f'Checkpoint {path!r} is truncated or corrupt ({err}).') from err
    if bad is not None:
        raise CheckpointFileError(
            f'Checkpoint {path!r} is corrupt (member {bad!r} fails its '
            'CRC check).')
    if not any(n.rpartition('/')[2] == 'data.pkl' for n in names):
        raise CheckpointFileError(
            f'Checkpoint {path!r} is a zip file but not a torch checkpoint '
            '(no data.pkl in it).')


def stored_path(path: str, work_dir: str) -> str:
    """``path`` as stored in ``work_dir``: relative to it when inside it,
    unchanged otherwise (another folder, a remote URI)."""
    if _is_local(path) and osp.isabs(path) and _inside(path, work_dir):
        return osp.relpath(osp.abspath(path), osp.abspath(work_dir))
    return path


def resolve_stored_path(path: Optional[str],
                        work_dir: str,
                        out_dir: Optional[str] = None) -> Optional[str]:
    """A path stored in ``work_dir``, relative to it or, if elsewhere, by
    its file name in ``out_dir`` (default ``work_dir``)."""
    if not path:
        return None
    path = str(path).strip()
    if not _is_local(path):
        return path
    if not osp.isabs(path):
        return osp.normpath(osp.join(osp.abspath(work_dir), path))
    if _inside(path, work_dir) or (out_dir and _inside(path, out_dir)):
        return osp.abspath(path)
    return osp.join(osp.abspath(out_dir or work_dir), osp.basename(path))


def training_checkpoints(folder: str) -> List[str]:
    """The resumable checkpoints in ``folder``, newest first."""
    found = []
    for path in glob.glob(osp.join(glob.escape(folder), '*.pth')):
        match = _TRAINING_CKPT.match(osp.basename(path))
        if match:
            found.append((int(match.group(2)), osp.getmtime(path), path))
    return [p for _, _, p in sorted(found, reverse=True)]


def _first_complete(candidates: List[str], skipped: List[str]):
    for path in candidates:
        try:
            verify_checkpoint(path)
            return path
        except CheckpointFileError as err:
            skipped.append(str(err))
    return None


def find_resume_checkpoint(work_dir: str,
                           checkpoint: Optional[str] = None) -> str:
    """The checkpoint ``--resume`` continues from: ``checkpoint`` (must be
    complete), else the newest complete one of ``work_dir`` (logged unless
    ``last_checkpoint`` names it).

    Raises:
        CheckpointFileError: No complete checkpoint to resume from.
    """
    work_dir = osp.abspath(work_dir)
    if checkpoint is not None:
        try:
            if _is_local(checkpoint):
                verify_checkpoint(checkpoint)
            return checkpoint
        except CheckpointFileError as err:
            folder = osp.dirname(osp.abspath(checkpoint))
            usable = _first_complete(training_checkpoints(folder), [])
            fix = (f' Resume from the previous complete checkpoint with '
                   f'--resume {usable}' if usable else
                   ' No other complete training checkpoint is in '
                   f'{folder!r}; start again without --resume')
            raise CheckpointFileError(
                f'Cannot resume: {err}{fix} (or --resume alone to pick the '
                'newest complete checkpoint of the work dir).') from err

    pointer = osp.join(work_dir, POINTER)
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = resolve_stored_path(f.read(), work_dir)
    candidates = training_checkpoints(work_dir)
    if named is not None and named not in candidates:  # e.g. in out_dir
        candidates.insert(0, named)
    skipped: List[str] = []
    found = _first_complete(candidates, skipped)
    if found is not None:
        if named is None:
            skipped.append(f'{POINTER!r} is missing (killed before it was '
                           'written?)')
        elif named in candidates[candidates.index(found) + 1:]:
            skipped.append(f'{POINTER!r} names an older one, {named}')
        if skipped:
            print_log(
                f'Resuming from {found}, the newest complete checkpoint '
                f'in the work dir ({"; ".join(skipped)}).',
                logger='current',
                level=logging.WARNING)
        return found
    if not osp.isdir(work_dir):
        where = f'the work dir {work_dir!r} does not exist'
    else:
        where = (f'the work dir {work_dir!r} holds no complete training '
                 'checkpoint (epoch_N.pth / iter_N.pth)')
        if skipped:
            where += ' (' + '; '.join(skipped) + ')'
    raise CheckpointFileError(
        f'--resume: nothing to resume, {where}. Check --work-dir (it '
        'defaults to work_dirs/<config name>), give a checkpoint with '
        '--resume CKPT, or start a new run without --resume.')
