"""Process and thread lifecycle: re-entry from the same thread, fork, and exit.

**Re-entry.**  Python runs signal handlers between bytecodes of the main thread,
also while it waits in ``flock`` or holds a queue lock, and the garbage collector
runs ``__del__`` methods wherever an allocation triggers it.  gunicorn's SIGUSR1
handler calls ``close()`` and ``_open()`` on every file handler; a ``__del__`` or
a formatter may log.  The rule: every entry point of a handler (``emit``,
``close``, ``flush``, ``_open``, ``doRollover``, the batched writer's pass) marks
the calling thread as *inside* from its first instruction to its last
(:class:`ThreadGuard`), and inside every other handler of the same log in this
process too: they share one lock and one such record (:mod:`mplog._lock`).  A call
that finds its thread already inside never blocks: a record goes to
``handleError`` (sync mode) or the queue (batched mode), ``flush()`` returns at
once, and ``close()``, ``_open()`` and ``doRollover()`` are deferred until the
outer call leaves, when they run in order.

**Fork.**  A forked child must not use the parent's lock description (flock
locks belong to it) nor its threads' state: :func:`track` registers each
handler, and ``os.register_at_fork`` gives every live one its ``_before_fork``
(the batched queue is written out first, so the child starts empty) and
``_after_fork`` (own descriptors, empty queues, no thread inside).

**Waits.**  mplog's own threads (:func:`background`: the batched writer, the
compressor and its timer, the group commit) may, at any instruction, need
logging's module lock (the garbage collector runs logging's weakref callbacks
in whatever thread allocates) and never wait for a thread that waits for them.  So a caller never
waits for them while holding that lock or its handler's lock: :func:`released`
lets go of both for the wait (``logging.basicConfig(force=True)``,
``dictConfig`` and ``logging.shutdown()`` call ``close()`` holding them).  The
lock order is written in :mod:`mplog._batch`.  Starting one of these threads waits
for it to run threading's bootstrap, where a collection could log and wait for
what the starter holds: :func:`start_thread` pauses the collector meanwhile
(:func:`collection_paused`).  And a thread of mplog that holds a lock a writer may
wait for while it holds the writers' lock (the group commit's, the batched queue's)
is marked (:func:`holding`): a record logged in it meanwhile by a ``__del__`` or a
collector's callback never waits for the writers' lock held by another thread.

**Exit.**  :func:`at_exit` runs work at the end of the process: at normal
interpreter exit *and* at the end of a multiprocessing child (fork, spawn,
forkserver), whose bootstrap runs threading's exit hooks and, for fork and
forkserver, then leaves with ``os._exit()``, skipping ``atexit`` (and so
``logging.shutdown()``).  threading runs these hooks before it joins the
non-daemon threads, which may still log: batched queues are written out and
batched mode ends there (the handlers write synchronously from then on, so
nothing is left in a queue at ``os._exit``), then group commits are synced.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any, Callable, Protocol, TypeVar

__all__ = [
    "ThreadGuard",
    "at_exit",
    "background",
    "collection_paused",
    "entry_point",
    "holding",
    "is_background",
    "is_holding",
    "released",
    "start_thread",
    "track",
]

_get_ident = threading.get_ident


Deferred = Callable[[], object]
Report = Callable[[Exception], None]

#: The code of every handler entry point that marks its thread inside (see
#: :func:`entry_point` and :meth:`ThreadGuard.stale`).
_entry_codes: set[CodeType] = set()

_F = TypeVar("_F", bound=Callable[..., Any])


def entry_point(func: _F) -> _F:
    """Declare *func* (a handler method whose ``self`` has a ``_guard``) an entry point
    that marks its thread inside while it runs; *func* itself is returned unchanged."""
    _entry_codes.add(func.__code__)
    return func


class ThreadGuard:
    """Which threads are inside the handlers of one lock file right now, and what they
    deferred.

    Every handler of one lock file in a process has its own guard over the same two
    dictionaries (the lock's :attr:`~mplog._lock.InterProcessLock.inside` and
    :attr:`~mplog._lock.InterProcessLock.deferred`): a thread inside one of them is inside
    all of them, so a signal handler that logs through, closes or reopens another
    handler of the same log never waits for its own thread.

    The handler's hot path uses :attr:`threads` directly (``ident in threads``,
    ``threads[ident] = True``): one dictionary operation each, atomic with
    respect to signal handlers, which run between bytecodes.

    .. versionadded:: 0.1
    """

    __slots__ = ("deferred", "report", "threads")

    def __init__(
        self,
        report: Report,
        threads: dict[int, bool] | None = None,
        deferred: dict[int, list[tuple[Deferred, Report]]] | None = None,
    ) -> None:
        #: thread ident -> True while that thread is inside the handler.
        self.threads: dict[int, bool] = {} if threads is None else threads
        #: thread ident -> calls deferred until that thread leaves, each with the
        #: report of the guard that deferred it.
        self.deferred: dict[int, list[tuple[Deferred, Report]]] = (
            {} if deferred is None else deferred
        )
        #: called inside the ``except`` of a deferred call that failed: the call that
        #: runs it (a logging call, often) must not raise into the application.
        self.report = report

    def inside(self) -> bool:
        """True if the calling thread is inside the handler."""
        return _get_ident() in self.threads

    def enter(self) -> bool:
        """Mark the calling thread inside; False (and no change) if it already was."""
        ident = _get_ident()
        if ident in self.threads and not self.stale(ident):
            return False
        self.threads[ident] = True
        return True

    def stale(self, ident: int) -> bool:
        """Whether the calling thread's mark outlived the call that set it; if so,
        remove it and run what that call deferred.

        An exception (KeyboardInterrupt) that arrives in the ``finally`` of an entry
        point, before the line that unmarks the thread, leaves the mark behind: the
        thread would then be "inside" for ever.  Only called when a thread finds
        itself inside (rare): it looks for an entry point of these handlers among
        the calling frames, beyond the caller's caller (the entry point asking).
        """
        threads = self.threads
        frame: FrameType | None
        try:
            frame = sys._getframe(3)
        except ValueError:  # the entry point was called from C (atexit, a bare thread)
            frame = None
        while frame is not None:
            if frame.f_code in _entry_codes:
                guard = getattr(frame.f_locals.get("self"), "_guard", None)
                if getattr(guard, "threads", None) is threads:
                    return False
            frame = frame.f_back
        threads.pop(ident, None)
        if self.deferred:
            self.run_deferred(ident)
        return True

    def leave(self) -> None:
        """Unmark the calling thread, then run what was deferred while it was inside."""
        ident = _get_ident()
        self.threads.pop(ident, None)
        if self.deferred:
            self.run_deferred(ident)

    def defer(self, call: Deferred) -> None:
        """Run *call* when the calling thread leaves the handler."""
        self.deferred.setdefault(_get_ident(), []).append((call, self.report))

    def run_deferred(self, ident: int) -> None:
        """Run, in order, what the thread *ident* deferred (it is no longer inside)."""
        calls = self.deferred.pop(ident, None)
        for call, report in calls or ():
            try:
                call()
            except Exception as error:
                report(error)

    def after_fork_in_child(self) -> None:
        """Only the forking thread survives a fork; what other threads held is gone."""
        self.threads.clear()
        self.deferred.clear()


class _Forkable(Protocol):
    def _before_fork(self) -> None: ...

    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[_Forkable] = weakref.WeakSet()
_hook_installed = False


def _before_fork() -> None:
    for handler in list(_live):
        handler._before_fork()


def _after_fork_in_child() -> None:
    for handler in list(_live):
        handler._after_fork()


def track(handler: _Forkable) -> None:
    """Call *handler*'s ``_before_fork`` and ``_after_fork`` around every ``os.fork``
    while it lives (also after ``close()``: gunicorn reopens closed handlers)."""
    global _hook_installed  # noqa: PLW0603 - one process-wide fork hook, installed lazily
    _live.add(handler)
    if not _hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _hook_installed = True


_exit_calls: list[Callable[[], None]] = []
_exit_hook_installed = False
_exit_started = False


def _run_exit_calls() -> None:
    global _exit_started  # noqa: PLW0603 - the process is ending: once per process
    _exit_started = True
    for call in list(_exit_calls):
        call()


def at_exit(call: Callable[[], None], first: bool = False) -> bool:
    """Run *call* when the process ends (once, however often it is registered);
    *first* puts it before the calls registered so far.  False if it will not run:
    the process is already ending (threading's exit hooks ran, or are running).

    threading's exit hooks run at interpreter exit and at the end of a
    multiprocessing child, before the non-daemon threads are joined; the list is
    inherited over fork, so registering once per process tree is enough.
    """
    global _exit_hook_installed  # noqa: PLW0603 - one process-wide hook, installed lazily
    if _exit_started:
        return False
    if call not in _exit_calls:
        _exit_calls.insert(0 if first else len(_exit_calls), call)
    if _exit_hook_installed:
        return True
    register = getattr(threading, "_register_atexit", None)  # used by concurrent.futures too
    try:
        if register is not None:
            register(_run_exit_calls)
        else:  # pragma: no cover - every supported CPython has it
            atexit.register(_run_exit_calls)
    except RuntimeError:  # already shutting down
        return False
    _exit_hook_installed = True
    return True


class _Starts(Protocol):
    _thread: threading.Thread | None


def start_thread(
    owner: _Starts, target: Callable[[], None], name: str, *, daemon: bool = True
) -> None:
    """Start *owner*'s background thread running *target*, as its ``_thread``, unless it
    has one (a daemon unless *daemon* is false).  Call it holding *owner*'s lock.

    Raises what :meth:`threading.Thread.start` raises (RuntimeError: interpreter
    shutdown, no threads left); a thread that never started is then not left as
    ``_thread``, so the next call starts one instead of the owner waiting for it, or
    leaving its work to it, for ever.  A signal handler that logs while the thread is
    made may call this again for the same owner: that call sees the first one among
    its callers and starts no second thread (the first one takes over its work).
    The garbage collector is paused meanwhile (:func:`collection_paused`).
    """
    if owner._thread is not None or _launching(owner):
        return
    with collection_paused():
        thread = background(threading.Thread(target=target, name=name, daemon=daemon))
        try:
            owner._thread = thread
            thread.start()
        except BaseException:
            # KeyboardInterrupt, or no thread: started only if threading lists it (an
            # interruption may come before the new thread has set its ident).
            started = thread.ident is not None or thread in threading.enumerate()
            if owner._thread is thread and not started:
                owner._thread = None
            raise


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic garbage collection in the block (unless the application paused it
    itself), where a thread of mplog is made and started or holds a lock another may
    wait for.

    :meth:`threading.Thread.start` waits until the new thread has run threading's
    bootstrap, Python code that allocates, and the caller holds locks (the writers'
    lock while it rotates, a queue's condition, the compressor's state).  A collection
    in the new thread then, or in the caller while it makes the thread, runs
    ``__del__`` methods and ``gc.callbacks``; one that logs through mplog would wait
    for those locks, held by a thread waiting for it.

    The blocks of all threads are counted: the collector resumes when the last one
    ends, not while another thread is still inside one, and only if a block paused it
    (not the application).  A forked child, where no thread is inside, starts afresh.
    No lock: an exception that interrupts a block anywhere (a signal handler's) must
    not leave another thread waiting, so the record is a list, whose ``append`` and
    ``remove`` the interpreter does at once.
    """
    global _pause_hook_installed  # noqa: PLW0603 - one process-wide fork hook, lazily
    if not _pause_hook_installed and hasattr(os, "register_at_fork"):
        _pause_hook_installed = True
        os.register_at_fork(after_in_child=_pauses_after_fork_in_child)
    token = object()
    try:
        _inside.append(token)
        if gc.isenabled():
            gc.disable()
            _paused_by_us[0] = True
        yield
    finally:
        with contextlib.suppress(ValueError):  # forked in the block: not in the child's
            _inside.remove(token)
        if not _inside and _paused_by_us[0]:
            _paused_by_us[0] = False
            gc.enable()


#: One token per :func:`collection_paused` block running now, in any thread.
_inside: list[object] = []
#: Whether those blocks paused the collector (else the application had, or nobody).
_paused_by_us = [False]
_pause_hook_installed = False


def _pauses_after_fork_in_child() -> None:
    _inside.clear()  # the threads inside a block did not follow the fork
    if _paused_by_us[0]:
        _paused_by_us[0] = False
        gc.enable()


def _launching(owner: _Starts) -> bool:
    """Whether this thread is inside :func:`start_thread` for *owner* already (re-entered
    from its allocation); only asked when *owner* has no thread, once per start."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code is _START_CODE and frame.f_locals.get("owner") is owner:
            return True
        frame = frame.f_back
    return False


_START_CODE = start_thread.__code__


_background: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


_T = TypeVar("_T", bound=threading.Thread)


def background(thread: _T) -> _T:
    """Mark *thread* (not started yet) as one of mplog's: see :func:`is_background`."""
    _background.add(thread)
    return thread


def is_background() -> bool:
    """True in one of mplog's threads, which never wait for room in a batched queue:
    the writer they would wait for may be waiting for them (see :mod:`mplog._batch`)."""
    return threading.current_thread() in _background


_held = threading.local()  # .depth: how many holding() blocks the thread is in


@contextlib.contextmanager
def holding() -> Iterator[None]:
    """Mark the calling thread, for the block, as holding a lock of mplog's that a thread
    holding the writers' lock may wait for; enter it before taking that lock.

    The garbage collector runs ``__del__`` methods and ``gc.callbacks`` at any
    allocation, in whatever thread allocates.  One that logs through a sync handler
    waits for the writers' lock; if another thread holds it, rotating, and waits for
    the lock this thread holds (the group commit's, in ``before_rename``), neither goes
    on.  Meanwhile :meth:`mplog._lock.InterProcessLock.acquire` raises
    :class:`~mplog.exceptions.ReentrantLogging` instead of waiting for another thread
    (a batched handler queues the record without waiting, as always in mplog's
    threads).  Cheaper and surer than pausing the collector, which is process-wide.
    """
    depth = getattr(_held, "depth", 0)
    _held.depth = depth + 1
    try:
        yield
    finally:
        _held.depth = depth


def is_holding() -> bool:
    """True inside a :func:`holding` block of the calling thread."""
    return getattr(_held, "depth", 0) > 0


@contextlib.contextmanager
def released(*locks: Any) -> Iterator[None]:
    """Let go of logging's module lock and of *locks* (reentrant locks such as a
    handler's ``lock``) while this thread holds them, however deeply; take them
    back, in that order, on the way out.

    For a caller that waits for mplog's threads: they may need logging's module
    lock at any instruction (the garbage collector runs
    ``logging._removeHandlerRef`` wherever it runs), and ``logging.basicConfig(force=True)``
    and ``dictConfig`` close the old handlers holding it; ``logging.shutdown()``
    holds each handler's lock while it flushes and closes it.  What the caller
    holds of mplog's is none of these: it takes them back holding nothing of mplog's.
    """
    saved: list[tuple[Any, Any]] = []
    for lock in (getattr(logging, "_lock", None), *locks):
        is_owned = getattr(lock, "_is_owned", None)
        if is_owned is not None and is_owned():
            saved.append((lock, lock._release_save()))
    try:
        yield
    finally:
        for lock, state in saved:
            lock._acquire_restore(state)
