"""The inter-process lock: an exclusive lock on a sidecar file.

The sidecar is never renamed or deleted by mplog, so every process that opens
it, now or later, locks the same inode.  On POSIX the hot path calls
``fcntl.flock`` directly (one system call; see :mod:`mplog._platform_lock`).
flock locks belong to an *open file description*: a descriptor inherited over
``fork`` shares the parent's lock and excludes nothing, so a forked child must
call :meth:`FileLock.forget` and open its own (the handler arranges that with
``os.register_at_fork``).

The sidecar's header holds the state the writers share (:mod:`mplog.header`).
Other programs may delete, replace or truncate the sidecar: :meth:`FileLock.verify`
notices (the handler calls it at each path check and before each rotation) and
moves this process to the file the path names now, carrying the shared state over.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
import time

from ._platform_lock import EX_NB as _EX_NB
from ._platform_lock import UN as _UN
from ._platform_lock import flock as _flock
from ._platform_lock import lock_descriptor, try_lock_descriptor
from .exceptions import LockFileConflict, LockTimeout, ReentrantLogging
from .header import HEADER_SIZE, SharedState, owner_key
from .permissions import FilePermissions

__all__ = [
    "FileLock",
    "SharedState",
    "is_special_file",
    "lock_descriptor",
    "lock_path_for",
    "try_lock_descriptor",
]

_OPEN_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
)
# An empty lock file older than this was made by a program that does not write
# mplog's header (concurrent-log-handler): see FileLock.foreign.
_FOREIGN_AGE = 2.0

_get_ident = threading.get_ident

# Module globals, looked up at each call: the hot path binds no attribute, and a test
# may patch them here.
_lock, _try_lock = lock_descriptor, try_lock_descriptor

# Attempts without blocking, after the first, before sleeping in flock: see
# FileLock._contended.
_RETRIES = 3


class FileLock:
    """An exclusive, non-reentrant lock on *path*, shared by every process and thread.

    flock does not exclude threads that share the descriptor, so a thread lock
    is taken first: a handler's writer thread, ``doRollover()`` and direct
    ``emit()`` calls from several threads exclude each other too.

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
        self.path = path
        self.timeout = timeout
        self.permissions = permissions or FilePermissions()
        self.log_path = log_path or path
        self._log_key: int | None = None if log_path is not None else 0  # 0: claims nothing
        self._fd: int | None = None
        self.direct_io = direct_io and hasattr(os, "O_DIRECT")
        self._shared: SharedState | None = None
        self._thread_lock = threading.Lock()
        self._owner: int | None = None  # the thread holding (or waiting in flock for) the lock
        self._close_on_release = False
        self._created = False  # the lock file was new (empty) when we opened it
        #: True once this lock file was found made by a program that does not write
        #: mplog's header (concurrent-log-handler); the handler reports it to the others.
        self.foreign = False

    def _open(self) -> int:
        fd = self.permissions.open(self.path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if st.st_size == 0 and time.time() - st.st_mtime > _FOREIGN_AGE:
                self.foreign = True  # mplog grows its lock files at once; this one is old
            self._created = st.st_size == 0 and not self.foreign
            if st.st_size < HEADER_SIZE:
                # Growing is safe without the lock: it never shortens a header
                # another process may have written meanwhile.
                os.ftruncate(fd, HEADER_SIZE)
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

    def _attach(self, fd: int) -> SharedState:
        """Read the header of the lock file just locked; claim it for our log."""
        shared = SharedState(self._state_fd(fd))
        try:
            other = shared.claim(self.log_path, self._key_of_log())
        except BaseException:
            _flock(fd, _UN)
            raise
        if other is not None and _real(other) != _real(self.log_path) and os.path.exists(other):
            _flock(fd, _UN)
            self._close_fd()
            raise LockFileConflict(self.log_path, self.path, other)
        if other is not None:  # the other log is gone (or is ours by another path): take over
            shared.repair()
            shared.claim(self.log_path, self._key_of_log())
        self._shared = shared
        return shared

    def _state_fd(self, fd: int) -> int:
        """The descriptor the shared state is read and written through: *fd*, or with
        :attr:`direct_io` a second one on the same file, opened ``O_DIRECT``."""
        if not self.direct_io:
            return fd
        try:
            return os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            return fd

    def _orphan(self) -> int | None:
        """We just created the lock file although the log already holds records: the
        old lock file may have been deleted while processes still use it.  Find it
        (Linux: through /proc) and lock it, before our new one, as :meth:`_move` does."""
        self._created = False
        try:
            if not os.path.getsize(self.log_path):
                return None
        except OSError:
            return None
        fd = find_deleted(self.path)
        if fd is not None:
            try:
                self._lock_fd(fd)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _adopt(self, orphan: int, shared: SharedState) -> None:
        """Carry the deleted lock file's state over to our new one, and send its users
        through their checks (they move here at their next record); then let go of it."""
        try:
            old = SharedState(orphan)
            if old.valid(self._key_of_log()):
                shared.copy_from(old)
                shared.bump()
                old.bump()
        finally:
            _flock(orphan, _UN)
            os.close(orphan)

    def _key_of_log(self) -> int:
        """The log's key in the header: its directory's inode and its name, the same
        through every mount of a shared filesystem (paths and device numbers differ
        from host to host), and the same for every path that names it locally."""
        key = self._log_key
        if key is None:
            folder, name = os.path.split(os.path.abspath(self.log_path))
            os.makedirs(folder, exist_ok=True)  # about to be created for the log anyway
            key = self._log_key = owner_key(f"{os.stat(folder).st_ino}/{name}")
        return key

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

    # -- the lock file itself ------------------------------------------------------------

    def verify(self) -> str | None:
        """Check that the path still names the locked file and that its header is
        intact (lock held); repair what is not.  Return what was wrong, or None.

        Deleted or replaced (``rm``, a tmp cleaner): move to the file the path
        names now, creating it if needed, and carry the shared state over unless
        processes started since already keep theirs there; both generations are
        bumped so that every writer, on either file, checks everything at its
        next record (and those on the old file move too).  Truncated or
        overwritten: write a fresh header.  Another log's handler may have
        claimed a recreated file: :class:`LockFileConflict`.
        """
        fd, shared = self._fd, self._shared
        assert fd is not None, "acquire the lock first"
        assert shared is not None, "acquire the lock first"
        held = os.fstat(fd)
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if (
            current is None
            or held.st_nlink == 0
            or (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino)
        ):
            if self._move(fd, shared):
                return f"lock file {self.path} was deleted or replaced; moved to the new one"
            return None
        if not shared.valid(self._key_of_log()):
            shared.repair()
            shared.claim(self.log_path, self._key_of_log())
            return f"lock file {self.path} was damaged (truncated or overwritten); repaired"
        return None

    def _move(self, old_fd: int, shared: SharedState) -> bool:
        """Lock the file now at our path while still holding the old one, then let go
        of the old one (see :meth:`verify`).  No deadlock: only a process moving off
        the old file holds both, and nobody on the new file waits for the old one."""
        new_fd = self.permissions.open(self.path, _OPEN_FLAGS)
        held, now_named = os.fstat(old_fd), os.fstat(new_fd)
        if (held.st_dev, held.st_ino) == (now_named.st_dev, now_named.st_ino):
            os.close(new_fd)  # the same file after all: locking it again would wait for us
            return False
        try:
            if now_named.st_size < HEADER_SIZE:
                os.ftruncate(new_fd, HEADER_SIZE)
            self._lock_fd(new_fd)
            new = SharedState(new_fd)
            if not new.valid(self._key_of_log()):  # a fresh file: the state we know is the best
                other = new.claim(self.log_path, self._key_of_log())
                if other is not None and _real(other) != _real(self.log_path):
                    _flock(new_fd, _UN)
                    raise LockFileConflict(self.log_path, self.path, other)
                new.copy_from(shared)
            new.bump()
            shared.bump()
        except BaseException:
            os.close(new_fd)
            raise
        _flock(old_fd, _UN)
        os.close(old_fd)
        if shared.fd != old_fd:
            os.close(shared.fd)
        self._fd, shared.fd = new_fd, self._state_fd(new_fd)
        return True

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
        shared, self._shared = self._shared, None
        if shared is not None and shared.fd != fd:  # the O_DIRECT descriptor
            with contextlib.suppress(OSError):
                os.close(shared.fd)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def find_deleted(path: str) -> int | None:
    """Open the deleted file last named *path* that some process still holds open
    (through ``/proc/<pid>/fd``, as far as this user may look); None if there is none."""
    target = f"{path} (deleted)"
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:  # no /proc: not Linux
        return None
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:
            continue
        for fd in fds:
            link = f"{folder}/{fd}"
            try:
                if os.readlink(link) == target:
                    # The /proc link must be followed: no O_NOFOLLOW here.
                    return os.open(link, _OPEN_FLAGS & ~(os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)))
            except OSError:
                continue
    return None


def _real(path: str) -> str:
    """*path* with its directory's symbolic links resolved (the file may not exist)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(folder), name)


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
