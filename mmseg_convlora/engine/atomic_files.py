"""Files that are always either the old or the complete new version."""
import contextlib
import errno
import os
import os.path as osp
import tempfile

from mmengine.fileio import LocalBackend, register_backend

from .runner.checkpoint_files import CheckpointFileError

TMP_MARK = '.tmp-'

_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def _write_all(f, data: bytes) -> None:  # a seam for tests
    f.write(data)


def _fsync_dir(dirname: str) -> None:
    with contextlib.suppress(OSError):  # Windows cannot open directories
        fd = os.open(dirname, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_DISK_ERRORS = {
    errno.ENOSPC: 'the disk is full',
    errno.EDQUOT: 'the disk quota is used up',
    errno.EROFS: 'the disk is read-only',
}


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden fsynced temporary file
    (``.<name>.tmp-XXXX``) renamed over it.

    Raises:
        CheckpointFileError: Full or read-only disk (``path`` unchanged).
    """
    dirname = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(dirname, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix='.' + osp.basename(path) + TMP_MARK, dir=dirname)
        os.close(fd)
        try:
            with open(tmp, 'wb') as f:
                _write_all(f, data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        if err.errno not in _DISK_ERRORS:
            raise
        raise CheckpointFileError(
            f'Cannot write {path!r}: {_DISK_ERRORS[err.errno]} ({err}). '
            'Free space there (or make it writable), then continue the run '
            'with --resume.') from err
    _fsync_dir(dirname)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend writing with :func:`atomic_write`
    (``backend_args=dict(backend='atomic_local')``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj.encode(encoding))
