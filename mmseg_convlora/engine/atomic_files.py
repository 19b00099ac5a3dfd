"""Files that are always either the old or the complete new version."""
import errno
import os
import os.path as osp
import tempfile

from mmengine.fileio import LocalBackend, register_backend

from .runner.checkpoint_files import CheckpointFileError

__all__ = ['atomic_write', 'AtomicLocalBackend', 'TMP_MARK']

TMP_MARK = '.tmp-'


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _write_all(f, data: bytes) -> None:  # a seam for tests
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


_DISK_ERRORS = {
    errno.ENOSPC: 'the disk is full',
    errno.EDQUOT: 'the disk quota is used up',
    errno.EROFS: 'the disk is read-only',
}


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always either the old
    file or the complete new one: a hidden temporary file
    (``.<name>.tmp-XXXX``, fsynced) is renamed over it.

    Raises:
        CheckpointFileError: The disk is full or read-only (``path`` is
            left as it was).
    """
    try:
        _atomic_write(str(path), data)
    except OSError as err:
        if err.errno not in _DISK_ERRORS:
            raise
        raise CheckpointFileError(
            f'Cannot write {path!r}: {_DISK_ERRORS[err.errno]} ({err}). '
            'Free space there (or make it writable), then continue the run '
            'with --resume.') from err


def _atomic_write(path: str, data: bytes) -> None:
    dirname = osp.dirname(osp.abspath(path))
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
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(dirname)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend writing with :func:`atomic_write`
    (``backend_args=dict(backend='atomic_local')``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj.encode(encoding))
