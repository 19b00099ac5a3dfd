"""The training checkpoints of a work dir: find, verify, name them."""
import glob
import logging
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional

from mmengine.logging import print_log

__all__ = [
    'CheckpointFileError', 'verify_checkpoint', 'stored_path',
    'resolve_stored_path', 'training_checkpoints', 'find_resume_checkpoint'
]

POINTER = 'last_checkpoint'
_TRAINING_CKPT = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class CheckpointFileError(RuntimeError):
    """A checkpoint that cannot be used, or none where one is needed."""


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def verify_checkpoint(path: str) -> None:
    """Check that ``path`` is a complete checkpoint, without loading it:
    its zip directory is readable and every member matches its CRC (files
    in torch's legacy format are only checked to exist).

    Raises:
        CheckpointFileError: Missing, empty, truncated or corrupt.
    """
    if not osp.isfile(path):
        raise CheckpointFileError(f'Checkpoint {path!r} does not exist.')
    if osp.getsize(path) == 0:
        raise CheckpointFileError(f'Checkpoint {path!r} is empty (0 bytes).')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic != b'PK\x03\x04':
        return  # legacy (pickle) format: nothing cheap to check
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointFileError(
            f'Checkpoint {path!r} is truncated or corrupt ({err}).') from err
    if bad is not None:
        raise CheckpointFileError(
            f'Checkpoint {path!r} is corrupt (member {bad!r} fails its '
            'CRC check).')


def stored_path(path: str, work_dir: str) -> str:
    """``path`` as stored in ``work_dir``: relative to it when inside it,
    unchanged otherwise (another folder, a remote URI)."""
    if not _is_local(path) or not osp.isabs(path):
        return path
    rel = osp.relpath(osp.abspath(path), osp.abspath(work_dir))
    return path if rel.startswith(os.pardir) else rel


def resolve_stored_path(path: Optional[str],
                        work_dir: str,
                        out_dir: Optional[str] = None) -> Optional[str]:
    """A path read from ``work_dir`` (pointer, message hub) as a usable
    path: relative ones are in ``work_dir``; an absolute one outside it
    (the work dir was copied or moved) is taken by its file name in
    ``out_dir`` (default ``work_dir``)."""
    if not path:
        return None
    path = str(path).strip()
    if not _is_local(path):
        return path
    work_dir = osp.abspath(work_dir)
    if not osp.isabs(path):
        return osp.normpath(osp.join(work_dir, path))
    if osp.abspath(path).startswith(work_dir + os.sep):
        return path
    if out_dir is not None and _is_local(out_dir) and osp.abspath(
            path).startswith(osp.abspath(out_dir) + os.sep):
        return path
    return osp.join(osp.abspath(out_dir or work_dir), osp.basename(path))


def training_checkpoints(folder: str) -> List[str]:
    """The resumable checkpoints in ``folder``, newest first."""
    found = []
    for path in glob.glob(osp.join(glob.escape(folder), '*.pth')):
        match = _TRAINING_CKPT.match(osp.basename(path))
        if match:
            found.append((int(match.group(2)), osp.getmtime(path), path))
    return [p for _, _, p in sorted(found, reverse=True)]


def _first_complete(candidates: List[str], skipped: List[str]) -> \
        Optional[str]:
    for path in candidates:
        try:
            verify_checkpoint(path)
            return path
        except CheckpointFileError as err:
            skipped.append(str(err))
    return None


def find_resume_checkpoint(work_dir: str,
                           checkpoint: Optional[str] = None) -> str:
    """The checkpoint ``--resume`` continues from.

    Args:
        work_dir (str): The run's work dir.
        checkpoint (str, optional): A checkpoint given explicitly
            (``--resume CKPT``); it must be complete.

    Returns:
        str: ``checkpoint``, else the file ``last_checkpoint`` names if it is
        complete, else the newest complete ``epoch_N`` / ``iter_N.pth``
        (logged).

    Raises:
        CheckpointFileError: ``checkpoint`` is incomplete, or the work dir
            holds no complete training checkpoint.
    """
    work_dir = osp.abspath(work_dir)
    if checkpoint is not None:
        if not _is_local(checkpoint):
            return checkpoint
        try:
            verify_checkpoint(checkpoint)
            return checkpoint
        except CheckpointFileError as err:
            folder = osp.dirname(osp.abspath(checkpoint))
            others = [
                p for p in training_checkpoints(folder)
                if osp.abspath(p) != osp.abspath(checkpoint)
            ]
            usable = _first_complete(others, [])
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
    skipped: List[str] = []
    if named is not None:
        found = _first_complete([named], skipped)
        if found is not None:
            return found
    found = _first_complete(
        [p for p in training_checkpoints(work_dir) if p != named], skipped)
    if found is not None:
        why = ('; '.join(skipped) if skipped else
               f'{POINTER!r} is missing (killed before it was written?)')
        print_log(
            f'Resuming from {found}, the newest complete checkpoint '
            f'in the work dir ({why}).',
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
