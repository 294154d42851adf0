"""The inter-process lock: an exclusive lock on a sidecar file, shared by threads too.

On POSIX the hot path calls ``fcntl.flock`` directly (one system call; see
:mod:`mplog._platform_lock`).  flock locks belong to an *open file description*:
a descriptor inherited over ``fork`` shares the parent's lock and excludes
nothing, so a forked child must call :meth:`FileLock.forget` and open its own
(the handler arranges that with ``os.register_at_fork``).

The lock file itself, its shared header and its defence against damage,
deletion and replacement are :mod:`mplog.lock_file`'s; PROTOCOL.md, section 2,
specifies them for every process on a log.
"""

from __future__ import annotations

import threading
import time

from ._platform_lock import EX_NB as _EX_NB
from ._platform_lock import UN as _UN
from ._platform_lock import flock as _flock
from ._platform_lock import lock_descriptor, try_lock_descriptor
from .exceptions import LockTimeout, ReentrantLogging
from .header import SharedState
from .lock_file import LockFile, is_special_file, lock_path_for
from .permissions import FilePermissions

__all__ = [
    "FileLock",
    "SharedState",
    "is_special_file",
    "lock_descriptor",
    "lock_path_for",
    "try_lock_descriptor",
]

_get_ident = threading.get_ident

# Module globals, looked up at each call: the hot path binds no attribute, and a test
# may patch them here.
_lock, _try_lock = lock_descriptor, try_lock_descriptor

# Attempts without blocking, after the first, before sleeping in flock: see
# FileLock._contended.
_RETRIES = 3


class FileLock(LockFile):
    """An exclusive, non-reentrant lock on *path*, shared by every process and thread.

    flock does not exclude threads that share the descriptor, so a thread lock
    is taken first: a handler's writer thread, ``doRollover()`` and direct
    ``emit()`` calls from several threads exclude each other too.  The lock file's
    header and repairs (:meth:`verify`) are :class:`~mplog.lock_file.LockFile`'s.

    :param path: the sidecar lock file; created (with *mode*) if missing.
    :param timeout: seconds to wait before raising :class:`LockTimeout`;
        ``None`` waits for ever.
    :param permissions: mode and owner for a newly created lock file.
    :param log_path: the log the lock file serves; the header records it, and
        :meth:`acquire` raises :class:`LockFileConflict` if another log's
        handler claimed the file first.  ``None``: a bare lock, claiming nothing.
    :param direct_io: read and write the shared state through an ``O_DIRECT``
        descriptor (NFS, where it needs no alignment): every read then asks the
        server, whatever this client caches or has been delegated.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        path: str,
        timeout: float | None = None,
        permissions: FilePermissions | None = None,
        log_path: str | None = None,
        direct_io: bool = False,
    ) -> None:
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"lock_timeout={timeout!r}: expected seconds >= 0 or None")
        super().__init__(path, permissions, log_path, direct_io)
        self.timeout = timeout
        self._thread_lock = threading.Lock()
        self._owner: int | None = None  # the thread holding (or waiting in flock for) the lock
        self._close_on_release = False

    @property
    def shared(self) -> SharedState:
        """The shared state returned by :meth:`acquire`; only while the lock is held."""
        assert self._shared is not None, "acquire the lock first"
        return self._shared

    def acquire(self) -> SharedState:
        """Block until this thread holds the lock, or raise :class:`LockTimeout`
        (:class:`ReentrantLogging` if this thread holds it, or waits for it,
        already); return the shared state, valid until :meth:`release`."""
        timeout = self.timeout
        if timeout is None:
            if not self._thread_lock.acquire(False):
                self._wait_for_thread()
            # Owner from here on: a signal handler that interrupts the wait in flock
            # below must see this thread as inside, not wait for itself.
            self._owner = _get_ident()
            shared = self._shared
            if shared is not None:  # the common case, kept short (_fd is open)
                try:
                    _flock(self._fd, _EX_NB)  # type: ignore[arg-type]  # open with _shared
                except BlockingIOError:
                    self._contended()
                except BaseException:
                    self._owner = None
                    self._thread_lock.release()
                    raise
                return shared
        else:
            if not self._thread_lock.acquire(False):
                self._wait_for_thread(timeout)
            self._owner = _get_ident()
        try:
            fd = self._fd
            if fd is None:
                fd = self._open()
            orphan = self._orphan() if self._created else None
            self._lock_fd(fd)
            shared = self._shared
            if shared is None:
                shared = self._attach(fd)
            if orphan is not None:
                self._adopt(orphan, shared)
        except BaseException:
            self._owner = None
            self._thread_lock.release()
            raise
        return shared

    def _lock_fd(self, fd: int) -> None:
        timeout = self.timeout
        if timeout is None:  # one system call, contended or not
            _lock(fd)
        elif not _try_lock(fd):
            self._wait(fd, time.monotonic() + timeout, timeout)

    def _wait_for_thread(self, timeout: float | None = None) -> None:
        """Take the thread lock that another thread holds, or raise if this thread holds
        it: a record logged from a ``__del__`` or a signal handler while this thread
        was writing would otherwise wait for itself for ever."""
        if self.owned():
            raise ReentrantLogging(self.path)
        if timeout is None:
            self._thread_lock.acquire()
        elif not self._thread_lock.acquire(True, timeout):
            raise LockTimeout(self.path, timeout)

    def _contended(self) -> None:
        """Another process holds the lock: try again a few times before blocking.

        The holder usually lets go within microseconds (one write), while
        sleeping in flock costs two context switches and the caches that go with
        them; with more writers than cores that made sync logging about 10%
        slower.  A holder that does not let go (stopped, descheduled) costs only
        these few attempts.
        """
        fd = self._fd
        try:
            for _ in range(_RETRIES):
                if _try_lock(fd):  # type: ignore[arg-type]
                    return
            _lock(fd)  # type: ignore[arg-type]
        except BaseException:
            self._owner = None
            self._thread_lock.release()
            raise

    def _wait(self, fd: int, deadline: float, timeout: float) -> None:
        """Poll with a growing back-off until *deadline*: flock itself has no timeout."""
        delay = 0.0001
        while not _try_lock(fd):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(self.path, timeout)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)

    def release(self) -> None:
        """Release the lock (the caller must hold it)."""
        self._owner = None
        try:
            fd = self._fd
            if fd is not None:
                _flock(fd, _UN)
                if self._close_on_release:
                    self._close_fd()
        finally:
            self._thread_lock.release()

    def owned(self) -> bool:
        """True if the calling thread holds the lock or waits for it (a signal handler
        that interrupted the thread sees it so)."""
        return self._owner == _get_ident()

    def __enter__(self) -> SharedState:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def forget(self) -> None:
        """Drop the descriptor inherited over fork without touching the parent's lock.

        Closing our copy does not release the lock: the parent still refers to
        the same open file description.
        """
        self._close_fd()
        self._thread_lock = threading.Lock()  # another thread may have held it at the fork
        self._owner = None

    def close(self) -> None:
        """Close the lock file (it stays on disk for the other processes).

        Waits for another thread holding the lock to release it: closing the
        descriptor would release the lock under it.  Called by the holding thread
        itself (from a signal handler that interrupted its write), the descriptor
        is closed when that write releases the lock.
        """
        if self.owned():
            self._close_on_release = True
            return
        with self._thread_lock:
            self._close_fd()

    def _close_fd(self) -> None:
        self._close_on_release = False
        super()._close_fd()
