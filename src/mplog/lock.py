"""The inter-process lock: an exclusive lock on a sidecar file.

The sidecar is never renamed or deleted, so every process that opens it, now or
later, locks the same inode.  On POSIX the hot path calls ``fcntl.flock``
directly (one system call; portalocker wraps the same primitive with more
overhead per call); on Windows portalocker does the work.  flock locks belong to an *open
file description*: a descriptor inherited over ``fork`` shares the parent's lock
and excludes nothing, so a forked child must call :meth:`FileLock.forget` and
open its own (the handler arranges that with ``os.register_at_fork``).

The first 64 bytes of the sidecar hold the state the writers share, mapped
into memory (:class:`SharedState`) and read or written only while the lock is
held: a generation number bumped whenever the active file changes, with that
file's identity (so a writer notices another process's rotation without a
``stat`` per record), the active file's size, the extent of a write in flight
(so a record cut short by SIGKILL can be cut off by the next writer), and the
time-rotation boundary.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import stat
import struct
import sys
import tempfile
import threading
import time

from .exceptions import LockTimeout, ReentrantLogging
from .permissions import FilePermissions

__all__ = [
    "FileLock",
    "SharedState",
    "is_special_file",
    "lock_descriptor",
    "lock_path_for",
    "try_lock_descriptor",
]

_HEADER_SIZE = 64
_MAGIC = b"mplog\x00\x00\x03"  # format version 3
# offset: 0 magic | 8 generation | 16 size | 24 write end (> size while a write is in
#         flight, else size) | 32 unused | 40 time boundary (NaN: none) |
#         48 active file dev | 56 ino
_MAGIC_AT = struct.Struct("<8s")
_STATE = struct.Struct("<QQQ")  # generation, size, write end; at 8
_WORD = struct.Struct("<Q")
_COMMIT = struct.Struct("<QQ")  # size, write end = size; at 16
_BOUNDARY = struct.Struct("<d")  # at 40
_FILE_ID = struct.Struct("<QQ")  # at 48
_GENERATION_STATE = struct.Struct("<QQQ")  # generation, size, write end = size; at 8
_OPEN_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
)

_get_ident = threading.get_ident

if sys.platform != "win32":
    import fcntl

    # The hot path calls flock itself: no Python frame between us and the system call.
    _flock = fcntl.flock
    _EX_NB, _UN = fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN

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

    _EX_NB, _UN = 1, 0

    def _flock(fd: int, operation: int) -> None:
        if operation == _UN:
            _unlock(fd)
        elif not _try_lock(fd):
            raise BlockingIOError(f"lock on descriptor {fd} is held")


# Attempts without blocking, after the first, before sleeping in flock: see
# FileLock._contended.
_RETRIES = 3


def lock_descriptor(fd: int) -> None:
    """Block until *fd*'s file is locked exclusively by this open file description."""
    _lock(fd)


def try_lock_descriptor(fd: int) -> bool:
    """Lock *fd*'s file exclusively if nobody else holds it; return whether it did."""
    return _try_lock(fd)


class SharedState:
    """The writers' shared state in the lock file; use it only with the lock held.

    .. versionadded:: 0.1
    """

    __slots__ = ("_map", "words")

    def __init__(self, mapping: mmap.mmap) -> None:
        self._map = mapping
        #: The header as 64-bit words (generation, size and write end are words 1 to
        #: 3), for the handler's fast path; None where the host's byte order is not
        #: the header's little-endian.
        self.words: memoryview | None = (
            memoryview(mapping).cast("Q") if sys.byteorder == "little" else None
        )
        if _MAGIC_AT.unpack_from(mapping, 0)[0] != _MAGIC:  # a new (or foreign) lock file
            mapping[:_HEADER_SIZE] = bytes(_HEADER_SIZE)
            _MAGIC_AT.pack_into(mapping, 0, _MAGIC)
            self.boundary = None

    def load(self) -> tuple[int, int, bool]:
        """Return (generation, active file size, whether a write is in flight)."""
        generation, size, end = _STATE.unpack_from(self._map, 8)
        return generation, size, end != size

    def begin_write(self, end: int) -> None:
        """Mark a write from the published size up to *end* as in flight.

        If its process dies before :meth:`end_write`, the next lock holder finds the
        mark and cuts a partial record off (see the handler's ``_recover``).
        """
        _WORD.pack_into(self._map, 24, end)

    def end_write(self, size: int) -> None:
        """Publish the active file's size and clear the in-flight mark (after a write,
        a recovery, or a stat)."""
        _COMMIT.pack_into(self._map, 16, size, size)

    def in_flight(self) -> tuple[int, int]:
        """The (start, end) of a write whose process died before finishing it."""
        start, end = _COMMIT.unpack_from(self._map, 16)
        return start, end

    def file_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the file the shared state describes."""
        return _FILE_ID.unpack_from(self._map, 48)

    def new_file(self, size: int, file_id: tuple[int, int]) -> int:
        """Announce a new active file (rotated or replaced); return the new generation."""
        generation = (self.load()[0] + 1) & 0xFFFFFFFFFFFFFFFF
        _FILE_ID.pack_into(self._map, 48, *file_id)
        _GENERATION_STATE.pack_into(self._map, 8, generation, size, size)
        return generation

    @property
    def boundary(self) -> float | None:
        """The end of the active file's time period, if a time rotation set one."""
        value: float = _BOUNDARY.unpack_from(self._map, 40)[0]
        return None if math.isnan(value) else value

    @boundary.setter
    def boundary(self, value: float | None) -> None:
        _BOUNDARY.pack_into(self._map, 40, math.nan if value is None else value)


class FileLock:
    """An exclusive, non-reentrant lock on *path*, shared by every process and thread.

    flock does not exclude threads that share the descriptor, so a thread lock
    is taken first: a handler's writer thread, ``doRollover()`` and direct
    ``emit()`` calls from several threads exclude each other too.

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
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"lock_timeout={timeout!r}: expected seconds >= 0 or None")
        self.path = path
        self.timeout = timeout
        self.permissions = permissions or FilePermissions()
        self._fd: int | None = None
        self._shared: SharedState | None = None
        self._thread_lock = threading.Lock()
        self._owner: int | None = None  # the thread holding the lock
        self._close_on_release = False

    def _open(self) -> int:
        fd = self.permissions.open(self.path, _OPEN_FLAGS)
        try:
            if os.fstat(fd).st_size < _HEADER_SIZE:
                # Growing is safe without the lock: it never shortens a header
                # another process may have written meanwhile.
                os.ftruncate(fd, _HEADER_SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    @property
    def shared(self) -> SharedState:
        """The shared state returned by :meth:`acquire`; only while the lock is held."""
        assert self._shared is not None, "acquire the lock first"
        return self._shared

    def acquire(self) -> SharedState:
        """Block until this thread holds the lock, or raise :class:`LockTimeout`
        (:class:`ReentrantLogging` if this thread holds it already); return the
        shared state, valid until :meth:`release`."""
        timeout = self.timeout
        if timeout is None:
            if not self._thread_lock.acquire(False):
                self._wait_for_thread()
            shared = self._shared
            if shared is not None:  # the common case, kept short (_fd is open)
                try:
                    _flock(self._fd, _EX_NB)  # type: ignore[arg-type]  # open with _shared
                except BlockingIOError:
                    self._contended()
                except BaseException:
                    self._thread_lock.release()
                    raise
                self._owner = _get_ident()
                return shared
        elif not self._thread_lock.acquire(False):
            self._wait_for_thread(timeout)
        try:
            fd = self._fd
            if fd is None:
                fd = self._open()
            if timeout is None:  # one system call, contended or not
                _lock(fd)
            elif not _try_lock(fd):
                self._wait(fd, time.monotonic() + timeout, timeout)
            shared = self._shared
            if shared is None:
                shared = self._shared = SharedState(mmap.mmap(fd, _HEADER_SIZE))
        except BaseException:
            self._thread_lock.release()
            raise
        self._owner = _get_ident()
        return shared

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
        """True if the calling thread holds the lock (a signal handler that interrupted
        the thread's write sees it held)."""
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
        fd, self._fd = self._fd, None
        self._shared = None  # unmapped once unreferenced
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def lock_path_for(log_path: str, directory: str | os.PathLike[str] | None) -> str:
    """concurrent-log-handler's lock name: ``app.log`` -> ``.__app.lock``, next to the log
    or in *directory* (created if missing)."""
    folder, name = os.path.split(log_path)
    if name.endswith(".log"):
        name = name[:-4]
    if directory is not None:
        folder = os.path.abspath(os.fspath(directory))
        os.makedirs(folder, exist_ok=True)
    elif is_special_file(log_path):
        # bpo-45401's targets (/dev/null, a FIFO) are never rotated, and their
        # directory is usually not writable by us: keep the lock in the temp dir.
        folder = tempfile.gettempdir()
    return os.path.join(folder, f".__{name}.lock")


def is_special_file(path: str) -> bool:
    """True if *path* exists and is not a regular file (a device, FIFO or socket)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
