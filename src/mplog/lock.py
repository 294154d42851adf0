"""The inter-process lock: an exclusive lock on a sidecar file.

The sidecar is never renamed or deleted, so every process that opens it, now or
later, locks the same inode.  On POSIX the hot path calls ``fcntl.flock``
directly (one system call; portalocker wraps the same primitive with more
overhead per call); on Windows portalocker does the work.  flock locks belong to an *open
file description*: a descriptor inherited over ``fork`` shares the parent's lock
and excludes nothing, so a forked child must call :meth:`FileLock.forget` and
open its own (the handler arranges that with ``os.register_at_fork``).

The first bytes of the sidecar also hold a little shared state (the instant of
the next time rotation), read and written only while the lock is held.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from .exceptions import LockTimeout
from .permissions import FilePermissions

__all__ = ["FileLock"]

_STATE_SIZE = 64
_OPEN_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
)

if sys.platform != "win32":
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # pragma: no cover - exercised on Windows only
    import portalocker

    def _try_lock(fd: int) -> bool:
        try:
            portalocker.lock(fd, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.AlreadyLocked:
            return False
        return True

    def _lock(fd: int) -> None:
        portalocker.lock(fd, portalocker.LOCK_EX)

    def _unlock(fd: int) -> None:
        portalocker.unlock(fd)


class FileLock:
    """An exclusive, non-reentrant lock on *path*, shared by every process.

    :param path: the sidecar lock file; created (with *mode*) if missing.
    :param timeout: seconds to wait before raising :class:`LockTimeout`;
        ``None`` waits for ever.
    :param permissions: mode and owner for a newly created lock file.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        path: str,
        timeout: float | None = None,
        permissions: FilePermissions | None = None,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.permissions = permissions or FilePermissions()
        self._fd: int | None = None

    def _open(self) -> int:
        fd = self.permissions.open(self.path, _OPEN_FLAGS)
        self._fd = fd
        return fd

    def acquire(self) -> None:
        """Block until this process holds the lock, or raise :class:`LockTimeout`."""
        fd = self._fd if self._fd is not None else self._open()
        if _try_lock(fd):
            return
        if self.timeout is None:
            _lock(fd)
        else:
            self._wait(fd, self.timeout)

    def _wait(self, fd: int, timeout: float) -> None:
        """Poll with a growing back-off until *timeout*: flock itself has no timeout."""
        deadline = time.monotonic() + timeout
        delay = 0.0001
        while not _try_lock(fd):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(self.path, timeout)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)

    def release(self) -> None:
        """Release the lock (the caller must hold it)."""
        if self._fd is not None:
            _unlock(self._fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def read_state(self) -> str:
        """Return the shared state text (empty if none); call with the lock held."""
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        return os.read(self._fd, _STATE_SIZE).decode("ascii", "replace").strip()

    def write_state(self, text: str) -> None:
        """Replace the shared state text; call with the lock held."""
        assert self._fd is not None
        data = text.encode("ascii")[:_STATE_SIZE]
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data.ljust(_STATE_SIZE))

    def forget(self) -> None:
        """Drop the descriptor inherited over fork without touching the parent's lock.

        Closing our copy does not release the lock: the parent still refers to
        the same open file description.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Close the lock file (it stays on disk for the other processes)."""
        self.forget()
