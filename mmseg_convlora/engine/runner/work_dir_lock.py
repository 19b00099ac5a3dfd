"""One training run per work dir."""
import os
import os.path as osp
import socket
import sys
import time
from typing import Dict

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, no protection
    fcntl = None

LOCK_NAME = '.train.lock'


class WorkDirLockedError(RuntimeError):
    """Another process trains in the same work dir."""


class WorkDirLock:
    """An exclusive ``flock`` on ``<work_dir>/.train.lock`` (recording its
    holder) while a run trains there; released when the process ends,
    however it ends. No-op without ``fcntl`` (Windows).

    Args:
        work_dir (str): The folder to lock (created if missing).
    """

    _held: Dict[str, int] = {}  # work dir -> file descriptor, this process

    def __init__(self, work_dir: str):
        self.work_dir = osp.realpath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)

    def acquire(self) -> None:
        """Take the lock (a no-op in the process that holds it).

        Raises:
            WorkDirLockedError: Another process holds it.
        """
        if fcntl is None or self.work_dir in self._held:
            return
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 4096, 0).decode('utf-8', 'replace').strip()
            os.close(fd)
            raise WorkDirLockedError(
                f'Another training run writes to the work dir '
                f'{self.work_dir!r} ({owner or "owner unknown"}): wait for it '
                'or stop it, or give this run another --work-dir (two runs '
                "would delete each other's checkpoints).") from None
        owner = (f'pid {os.getpid()} on {socket.gethostname()}, started '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}: '
                 f'{" ".join(sys.argv)[:300]}')
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode('utf-8'), 0)
        self._held[self.work_dir] = fd

    def release(self) -> None:
        """Give the lock up (the file stays; it is harmless)."""
        fd = self._held.pop(self.work_dir, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock
