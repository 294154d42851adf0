"""The inter-process lock: an exclusive lock on a sidecar file, shared by threads too.

On POSIX the hot path calls ``fcntl.flock`` directly (one system call; see
:mod:`mplog._platform_lock`).  flock locks belong to an *open file description*:
a descriptor inherited over ``fork`` shares the parent's lock and excludes
nothing, so a forked child must call :meth:`InterProcessLock.forget` and open its own
(the handler arranges that with ``os.register_at_fork``).

**One lock per lock file per process.**  Several handlers may write one log in
one process (gunicorn's error and access logs, a root and a named logger's
handler).  Their locks are created with ``process_wide=True`` and then share a
:class:`_Core`: one descriptor (one open file description), one thread lock, one
record of the threads inside them.  A thread that holds the lock through one
handler is seen as inside by all of them, so a signal handler that logs through
another one never waits for its own thread.  The descriptor is closed when the
last lock using it is closed.

**Exceptions at any point.**  KeyboardInterrupt and a timeout decorator's
exception arrive between any two bytecodes.  The thread lock is a C
:class:`threading.RLock`, which records its owner in the step that takes it, so
"does this thread hold it" is always answerable (:meth:`InterProcessLock.owned`).
``acquire`` undoes what it took on any exception, ``release`` unlocks in its own
``except``, and the handler's entry points call :meth:`InterProcessLock.let_go`
when an exception leaves them.  Unlocking the descriptor when it is not locked is
harmless: every user of it in this process holds the thread lock first.

The lock file itself, its shared header and its defence against damage,
deletion and replacement are :mod:`mplog._lock_file`'s; PROTOCOL.md, section 2,
specifies them for every process on a log.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from typing import Callable

from ._header import SharedState
from ._lifecycle import is_holding
from ._lock_file import LockFile, is_special_file, lock_path_for
from ._permissions import FilePermissions
from ._platform_lock import EX_NB as _EX_NB
from ._platform_lock import UN as _UN
from ._platform_lock import flock as _flock
from ._platform_lock import lock_descriptor, try_lock_descriptor
from .exceptions import LockTimeout, ReentrantLogging

__all__ = [
    "InterProcessLock",
    "SharedState",
    "is_special_file",
    "lock_descriptor",
    "lock_path_for",
    "try_lock_descriptor",
]

# Module globals, looked up at each call: the hot path binds no attribute, and a test
# may patch them here.
_lock, _try_lock = lock_descriptor, try_lock_descriptor

# Attempts without blocking before sleeping in flock, then attempts each after
# sched_yield (POSIX only): see InterProcessLock._contended.
_RETRIES, _YIELDS = 3, 64
_yield = getattr(os, "sched_yield", None)

#: What a thread deferred until it leaves the handlers: each call with its error report.
Deferred = list[tuple[Callable[[], object], Callable[[Exception], None]]]


class _Core:
    """What every lock of one lock file shares in this process (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "close_on_release",
        "deferred",
        "fd",
        "inside",
        "shared",
        "thread_lock",
        "users",
    )

    def __init__(self) -> None:
        self.fd: int | None = None
        self.shared: SharedState | None = None
        self.thread_lock = threading.RLock()  # owner recorded atomically with the acquire
        self.close_on_release = False
        self.users = 0  # locks using the descriptor (see InterProcessLock.close)
        #: thread ident -> True while that thread is inside a handler on this lock
        #: (mplog._lifecycle.ThreadGuard), and what it deferred until it leaves.
        self.inside: dict[int, bool] = {}
        self.deferred: dict[int, Deferred] = {}

    def after_fork_in_child(self) -> None:
        """Only the forking thread survives a fork, and the descriptor is the parent's."""
        self.thread_lock = threading.RLock()
        self.close_on_release = False
        self.inside.clear()
        self.deferred.clear()


_cores: weakref.WeakValueDictionary[tuple[str, str], _Core] = weakref.WeakValueDictionary()
_cores_lock = threading.Lock()


def _core_for(path: str, log_path: str) -> _Core:
    key = (os.path.realpath(path), os.path.realpath(log_path))
    with _cores_lock:
        core = _cores.get(key)
        if core is None:
            core = _cores[key] = _Core()
        return core


class InterProcessLock(LockFile):
    """An exclusive, non-reentrant lock on *path*, shared by every process and thread.

    flock does not exclude threads that share the descriptor, so a thread lock
    is taken first: a handler's writer thread, ``doRollover()`` and direct
    ``emit()`` calls from several threads exclude each other too.  The lock file's
    header and repairs (:meth:`revalidate`) are :class:`~mplog._lock_file.LockFile`'s.

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
    :param process_wide: share the descriptor, the thread lock and the record of
        the threads inside with every other process-wide lock of the same lock
        file and log in this process (every handler's lock is).  Otherwise the
        lock has its own descriptor and excludes the others like another process.
    :param network: the lock file is on a network filesystem, where each try is a
        round trip: a contended acquire does not yield and try again (see
        :meth:`_contended`).

    .. versionadded:: 0.1
    """

    # LockFile.__init__ assigns _fd and _shared before the core is chosen: those
    # writes land on this detached core, not on a core other locks already use.
    _core = _Core()

    def __init__(
        self,
        path: str,
        timeout: float | None = None,
        permissions: FilePermissions | None = None,
        log_path: str | None = None,
        direct_io: bool = False,
        *,
        process_wide: bool = False,
        network: bool = False,
    ) -> None:
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"lock_timeout={timeout!r}: expected seconds >= 0 or None")
        super().__init__(path, permissions, log_path, direct_io)
        self.timeout = timeout
        self._network = network  # every try is a round trip to the server: no yields
        self._core = _core_for(path, log_path or path) if process_wide else _Core()
        self._core.users += 1
        self._counted = True  # counted in the core's users (until close)

    # LockFile's descriptor and shared state are the core's.
    @property
    def _fd(self) -> int | None:
        return self._core.fd

    @_fd.setter
    def _fd(self, value: int | None) -> None:
        self._core.fd = value

    @property
    def _shared(self) -> SharedState | None:
        return self._core.shared

    @_shared.setter
    def _shared(self, value: SharedState | None) -> None:
        self._core.shared = value

    @property
    def inside(self) -> dict[int, bool]:
        """Thread ident -> True while that thread is inside a handler on this lock."""
        return self._core.inside

    @property
    def deferred(self) -> dict[int, Deferred]:
        """Thread ident -> calls (and their error reports) deferred until it leaves."""
        return self._core.deferred

    @property
    def shared(self) -> SharedState:
        """The shared state returned by :meth:`acquire`; only while the lock is held."""
        shared = self._core.shared
        assert shared is not None, "acquire the lock first"
        return shared

    def acquire(self) -> SharedState:
        """Block until this thread holds the lock, or raise :class:`LockTimeout`
        (:class:`ReentrantLogging` if this thread holds it, or waits for it,
        already, or another thread holds it and this one holds what that thread may
        wait for: :func:`mplog._lifecycle.holding`); return the shared state, valid
        until :meth:`release`.

        Whatever exception leaves it, the thread holds nothing afterwards."""
        core = self._core
        thread_lock = core.thread_lock
        # Owned from the moment the thread lock is taken: a signal handler that
        # interrupts the wait in flock below sees this thread as inside.
        if thread_lock._is_owned():  # type: ignore[attr-defined]  # C RLock's
            raise ReentrantLogging(self.path)
        timeout = self.timeout
        try:
            if not thread_lock.acquire(False):
                self._wait_for_thread(thread_lock, timeout)
            shared = core.shared
            if timeout is None and shared is not None:  # the common case (fd is open)
                try:
                    _flock(core.fd, _EX_NB)  # type: ignore[arg-type]  # open with shared
                except BlockingIOError:
                    self._contended()
                return shared
            return self._acquire_slowly()
        except BaseException:
            self.let_go()
            raise

    def _acquire_slowly(self) -> SharedState:
        """The thread lock held: open the lock file if need be, lock it, read the header."""
        if not self._counted:  # reopened after close()
            self._counted = True
            self._core.users += 1
        fd = self._fd
        if fd is None:
            fd = self._open()
        orphan = self._orphan() if self._created else None
        try:
            self._lock_fd(fd)
            shared = self._shared
            if shared is None:
                shared = self._attach(fd)
        except BaseException:
            if orphan is not None:
                with contextlib.suppress(OSError):
                    os.close(orphan)  # releases its lock: only we use that description
            raise
        if orphan is not None:
            self._adopt(orphan, shared)
        return shared

    def let_go(self) -> None:
        """Release the thread lock and the flock if this thread holds them.

        Called by :meth:`acquire` on any exception, and by an entry point that an
        exception leaves, as its last layer of cleanup: an exception that arrived
        inside :meth:`release`, or where a ``with`` block ends, may have left them
        held.  Only for the outermost entry point: a call nested in one holding the
        lock must not release it."""
        core = self._core
        thread_lock = core.thread_lock
        if thread_lock._is_owned():  # type: ignore[attr-defined]
            try:
                fd = core.fd
                if fd is not None:
                    with contextlib.suppress(OSError):
                        _flock(fd, _UN)
                    if core.close_on_release:
                        self._close_fd()
            finally:
                thread_lock.release()

    def _lock_fd(self, fd: int) -> None:
        timeout = self.timeout
        if timeout is None:  # one system call, contended or not
            _lock(fd)
        elif not _try_lock(fd):
            self._wait(fd, time.monotonic() + timeout, timeout)

    def _wait_for_thread(self, thread_lock: threading.RLock, timeout: float | None) -> None:
        """Take the thread lock that another thread holds; never in a thread that holds a
        lock that thread may wait for (:func:`mplog._lifecycle.holding`): raise
        :class:`ReentrantLogging` there, as a wait for this thread itself would."""
        if is_holding():
            raise ReentrantLogging(self.path)
        if timeout is None:
            thread_lock.acquire()
        elif not thread_lock.acquire(True, timeout):
            raise LockTimeout(self.path, timeout)

    def _contended(self) -> None:
        """Another process holds the lock: try again, then sleep in flock (two context
        switches).  The holder usually lets go within microseconds; with more writers
        than cores it is often paused by the scheduler mid-record, and ``sched_yield``
        before each later try lets it have this core (16 writers on 2 cores: 0.58-0.65
        -> 0.76-0.80 of ``FileHandler``'s speed)."""
        fd = self._core.fd
        for _ in range(_RETRIES):
            if _try_lock(fd):  # type: ignore[arg-type]
                return
        if _yield is not None and not self._network:
            for _ in range(_YIELDS):
                _yield()
                if _try_lock(fd):  # type: ignore[arg-type]
                    return
        _lock(fd)  # type: ignore[arg-type]

    def _wait(self, fd: int, deadline: float, timeout: float) -> None:
        """Poll until *deadline* (flock itself has no timeout): after ``sched_yield``
        first, as :meth:`_contended` does, then with a growing back-off."""
        if _yield is not None and not self._network:
            for _ in range(_YIELDS):
                _yield()
                if _try_lock(fd):
                    return
                if time.monotonic() >= deadline:
                    raise LockTimeout(self.path, timeout)
        delay = 0.0001
        while not _try_lock(fd):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(self.path, timeout)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)

    def release(self) -> None:
        """Release the lock (the caller must hold it)."""
        core = self._core
        fd = core.fd
        try:
            if fd is not None:
                _flock(fd, _UN)
                if core.close_on_release:
                    self._close_fd()
        except BaseException:
            # Interrupted before or while unlocking: unlock before the thread lock goes.
            if fd is not None:
                with contextlib.suppress(OSError):
                    _flock(fd, _UN)
            raise
        finally:
            core.thread_lock.release()

    def owned(self) -> bool:
        """True if the calling thread holds the lock or waits for it (a signal handler
        that interrupted the thread sees it so)."""
        return self._core.thread_lock._is_owned()  # type: ignore[attr-defined,no-any-return]

    def __enter__(self) -> SharedState:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def forget(self) -> None:
        """Drop the descriptor inherited over fork without touching the parent's lock.

        Closing our copy does not release the lock: the parent still refers to
        the same open file description.
        """
        self._core.after_fork_in_child()
        self._close_fd()

    def close(self, first: Callable[[], object] | None = None) -> None:
        """Close the lock file (it stays on disk for the other processes), once no
        other process-wide lock of this lock file uses the descriptor.

        *first* (the handler closing its log file) runs before, holding the thread
        lock: no other thread is writing then.  Waits for another thread holding
        the lock to release it: closing the descriptor would release the lock
        under it.  Called by the holding thread itself, the descriptor is closed
        when it releases the lock.
        """
        core = self._core
        thread_lock = core.thread_lock
        held = thread_lock._is_owned()  # type: ignore[attr-defined]
        try:
            if not held:
                thread_lock.acquire()
            if first is not None:
                first()
            if self._counted:
                self._counted = False
                core.users -= 1
            if core.users <= 0:  # no other lock uses the descriptor
                if held:
                    core.close_on_release = True
                else:
                    self._close_fd()
        finally:
            # Owned only if taken here (or by an outer caller, then held): an exception
            # before the acquire returned leaves nothing to release.
            if not held and thread_lock._is_owned():  # type: ignore[attr-defined]
                thread_lock.release()

    def discard(self) -> None:
        """Close the descriptors of a lock that no thread holds or waits for (its
        handler's construction failed), without taking any lock to do so; while another
        process-wide lock of this lock file uses them, they stay open for it."""
        core = self._core
        if self._counted:
            self._counted = False
            core.users -= 1
        if core.users <= 0:
            super().discard()

    def _close_fd(self) -> None:
        self._core.close_on_release = False
        super()._close_fd()
