"""Batched mode: a per-process writer thread that drains a bounded queue.

The calling thread formats and encodes the record and appends the bytes to
the queue; one background thread takes everything queued so far and hands it to
the handler, which writes it under ONE lock acquisition.  ``flush()`` returns
once everything queued before it is in the file; a full queue blocks the caller
(or, with ``overflow="drop"``, drops and counts).

**The hand-off.**  While the writer runs and no close has begun, :meth:`BatchWriter.put`
appends to the queue (a list: one ``append`` is atomic under the interpreter lock)
without taking any lock, and takes the condition only to wake the writer, when the
queue is full, or when a close began between its test and its append.  The writer
is woken only when it sleeps on an empty queue (by the first record: a lone record
is written at once) or once :data:`WAKE_AT` records are queued.  After writing a
batch it drains again at once if that many are queued, sleeps if nothing is, and
otherwise waits up to :data:`LINGER` seconds for more, so that a steady stream is
written in batches of about :data:`WAKE_AT` records with one wake-up each, and the
writer does not take the interpreter lock from the producers per record.  A
record therefore waits in the queue at most :data:`LINGER` seconds plus the time to
write the batch before it (and the time the writer needs to get a CPU); ``flush()``,
``close()`` and a producer waiting for room end the wait at once.

Whether a record appended without the condition is the writer's (:attr:`_fast`
read again after the append): before :meth:`BatchWriter.close` clears it, the
writer drains everything before it stops; after, the record's own thread looks
for it (by identity) under the condition and, if the stopped writer left it,
takes it back and goes the slow way.

**Locks and waits.**  Garbage collection runs ``__del__`` methods (which may log)
and weakref callbacks (``logging._removeHandlerRef`` takes logging's module
lock) in whatever thread allocates, and signal handlers run in the main thread
between any two bytecodes.  So no thread may wait for another while holding
something that other thread could need at any instruction.  The order:

1. logging's module lock and the handler's lock (``Handler.lock``): mplog's threads
   may take them at any instruction (the collector's callbacks; a ``__del__`` that
   logs through a handler that is not batched), so nobody holds them while waiting
   for those threads.  In batched mode ``handle`` queues without the handler's lock,
   and the handler's ``flush()`` and ``close()`` let go of both while they wait
   (:func:`mplog._lifecycle.released`) and take them back holding nothing of mplog's;
2. the queue's condition (``_cond``, reentrant; the writer sleeps on ``_work``, over
   the same lock): waited on only for room (a producer), for the writer's progress
   (``flush``, ``close``) or for records (the writer); nobody holding it waits for
   anything else (a ``__del__`` that logs in the writer meanwhile never waits for
   the writers' lock: :func:`mplog._lifecycle.holding`);
3. the inter-process lock (:class:`mplog._lock.InterProcessLock`): taken by the writer to
   write a batch.

A thread of mplog (the writer, the compressor, the timers, the group commit)
never waits for room in a queue: a record it logs (a ``__del__``) is queued past
the bound.  The writer could otherwise wait for itself, or for a thread that
waits for it.

**Close and exit.**  :meth:`BatchWriter.close` writes out the queue and stops the
thread; from then on the handler writes synchronously, in the caller, until
``reopen()``.  Records put while the writer drains for a close wait for it to end
and are then written by their caller, so each thread's records stay in order.
At the end of the process (threading's exit hook, before non-daemon threads are
joined: also in multiprocessing children, which then leave with ``os._exit``)
every writer is closed, so the records that threads still running log are
written synchronously, not queued for a thread that ``os._exit`` would kill.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Callable

from ._lifecycle import at_exit, holding, is_background, start_thread

__all__ = ["LINGER", "WAKE_AT", "BatchWriter"]

WriteBatch = Callable[[list[bytes]], None]
OnError = Callable[[BaseException, int], None]

WAKE_AT = 256  # records queued that wake a waiting writer (at most half the queue)
LINGER = 0.01  # seconds a writer waits for more after a batch, with fewer queued
_NEVER = sys.maxsize  # no queue length wakes a writer that is awake

_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


def _close_all() -> None:
    for writer in list(_writers):
        writer.close()


class BatchWriter:
    """A bounded queue of encoded records and the thread that writes them.

    :param write_batch: writes a list of records; called from the writer thread.
    :param on_error: called (from the writer thread, inside the ``except``) with the
        exception and the number of records that could not be written.
    :param max_records: queue bound, in records.
    :param drop: drop records when the queue is full instead of blocking.

    .. versionadded:: 0.1
    """

    def __init__(
        self, write_batch: WriteBatch, on_error: OnError, max_records: int, drop: bool
    ) -> None:
        self._write_batch = write_batch
        self._on_error = on_error
        self.max_records = max_records
        self.drop = drop
        self.dropped = 0
        self.stopped = False  # closed: the handler writes synchronously from now on
        self._batch_size = max(1, min(WAKE_AT, max_records // 2))
        self._reset()
        self._register()

    def _register(self) -> None:
        # Now, not when the thread starts: a thread may log its first record only
        # once the process is ending, when it is too late to register.
        _writers.add(self)
        if not at_exit(_close_all, first=True):  # the process is ending: no thread
            self.stopped = True

    def _reset(self) -> None:
        # Reentrant: a __del__ run by the garbage collector, or a signal handler, may
        # log from inside put() in the same thread.
        self._cond = threading.Condition(threading.RLock())
        self._work = threading.Condition(self._cond._lock)  # type: ignore[attr-defined]
        self._pending: list[bytes] = []
        self._taken = 0  # records ever taken by the writer
        self._written = 0  # records ever taken care of (written or reported)
        self._wake_at = _NEVER  # a queue this long wakes the writer (see _run)
        self._hurry = False  # a flush() waits: the writer does not linger
        self._fast = False  # a writer runs, no close begun: put() appends lock-free
        self._closing = False
        self._thread: threading.Thread | None = None

    def put(self, data: bytes, block: bool = True) -> bool | None:
        """Queue *data*: True if queued, False if dropped because the queue is full,
        None if the writer is closed (the caller writes *data* itself).

        With *block* false (a record logged from inside the handler: a signal
        handler, a ``__del__``), or from one of mplog's threads, a full queue takes
        the record anyway: waiting could wait for this very thread.  While the
        writer drains for :meth:`close`, a blocking caller waits for it to finish.
        Without the condition, the test for room and the append are two steps: threads
        that passed the test together may each append one record past the bound.
        """
        pending = self._pending
        if self._fast and len(pending) < self.max_records:
            pending.append(data)  # atomic; the writer takes it (see the module docstring)
            if self._fast and len(pending) < self._wake_at:
                return True
            return self._appended(data, block)
        return self._put(data, block)

    def _appended(self, data: bytes, block: bool) -> bool | None:
        """After a lock-free append: wake the writer, or find out whether a close
        that began meanwhile left the record behind."""
        with self._cond:
            if self._fast or self._thread is not None:  # the writer drains before it stops
                if len(self._pending) >= self._wake_at:
                    self._wake()
                return True
            pending = self._pending
            for index in range(len(pending) - 1, -1, -1):
                if pending[index] is data:  # the stopped writer left it: take it back
                    del pending[index]
                    return self._put(data, block)
            return True  # taken before the writer stopped

    def _wake(self) -> None:
        # Under the condition.  Notify first: interrupted between the two lines, the
        # writer still wakes (and resets _wake_at itself).  The writer's own record (a
        # __del__ between its test for an empty queue and its wait) leaves _wake_at
        # alone, so that the next record wakes it.
        self._work.notify()
        if self._thread is not threading.current_thread():
            self._wake_at = _NEVER

    def _put(self, data: bytes, block: bool) -> bool | None:
        with self._cond:
            while True:
                if self.stopped:
                    return None
                full = len(self._pending) >= self.max_records
                if full and self.drop:
                    self.dropped += 1
                    return False
                if (
                    not block
                    or not (full or self._closing)
                    or self._thread is threading.current_thread()
                    or is_background()
                ):
                    break  # past the bound, if need be: the writer drains it before it stops
                self._wake()
                self._cond.wait()
            self._pending.append(data)
            if self._thread is None:
                self._start()
            elif len(self._pending) >= self._wake_at:
                self._wake()
            self._fast = self._thread is not None and not self._closing and not self.stopped
        return True

    def _start(self) -> None:
        # A re-entrant put() meanwhile leaves its record to this writer: see start_thread.
        start_thread(self, self._run, "mplog-writer")

    def _run(self) -> None:
        cond, work = self._cond, self._work
        linger = False  # after a batch: wait a little for more
        while True:
            # Marked (mplog._lifecycle.holding): a thread holding the writers' lock may
            # wait for the condition (a signal handler or rotator that logs through this
            # handler), and a __del__ that logs here must not wait for that lock.
            with holding(), cond:
                # Linger after a batch while a few records are queued, unless a flush()
                # or close() waits.  Tested after _wake_at is set (see put()); the wait
                # runs either way (for no time at all when not lingering), so that the
                # writer runs the same lines whatever the timing.
                self._wake_at = self._batch_size
                pending = self._pending
                linger = linger and 0 < len(pending) < self._batch_size
                work.wait(LINGER if linger and not (self._hurry or self._closing) else 0)
                while not self._closing:
                    self._wake_at = 1
                    if self._pending:  # tested after the line above: see put()
                        break
                    work.wait()
                self._wake_at = _NEVER
                self._hurry = False
                pending = self._pending
                count = len(pending)
                batch = pending[:count]
                del pending[:count]
                self._taken += count
                upto = self._taken
                cond.notify_all()  # room in the queue for blocked producers
            if batch:
                try:
                    self._write_batch(batch)
                except BaseException as err:  # a hook's SystemExit too: never end the writer
                    self._on_error(err, len(batch))
            linger = True
            with holding(), cond:
                self._written = upto
                if self._closing:
                    # Under the condition: a put() from now on sees stopped (and
                    # writes synchronously), one before it was written above.  Only
                    # this thread can put() meanwhile (a __del__ that logs): before
                    # stopped is set, its record is queued, and written first.  A
                    # lock-free put() whose append came after the test below takes
                    # its record back (see _appended).
                    self.stopped = True
                    if not self._pending:
                        self._fast = False
                        self._closing = False
                        self._thread = None
                        cond.notify_all()
                        return
                    self.stopped = False
                cond.notify_all()  # wake flush()

    def flush(self) -> None:
        """Return once every record queued before this call is written (or reported);
        at once in one of mplog's threads, which the writer may be waiting for."""
        with self._cond:
            target = self._taken + len(self._pending)
            while self._written < target and self._thread is not None:
                if is_background():
                    return  # the writer (a __del__), or a thread it may wait for: never wait
                if not self._thread.is_alive():  # pragma: no cover - the thread never dies
                    break
                self._hurry = True  # the writer clears it when it drains
                self._wake()
                self._cond.wait()

    def close(self) -> None:
        """Write out the queue, then stop the writer thread for good.

        A record logged after this (``logging.shutdown()`` closed the handler, but
        an ``atexit`` function or a ``__del__`` still logs; or a thread that runs
        on at the end of the process) must not start a thread that nothing would
        flush: :attr:`stopped` tells the handler to write it synchronously.
        """
        with self._cond:
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._fast, self._thread, self.stopped, self._closing = False, None, True, False
                return
            # Wake the writer first: interrupted between the two lines, it either
            # sleeps on with nothing to do, or drains and stops, never sleeps on
            # while puts wait for it to stop.
            self._wake()
            self._closing = True
            # From now on put() takes the condition (after _closing: a record logged
            # in between, by a signal handler, must not make it true again).  The
            # writer clears it too when it stops.
            self._fast = False
            if is_background():
                return  # the writer (a __del__) stops once the queue is empty; never wait
            while self._thread is thread and thread.is_alive():
                self._cond.wait()
            if self._thread is thread:  # pragma: no cover - the thread never dies
                self._fast, self._thread, self.stopped, self._closing = False, None, True, False
        thread.join()

    def reopen(self) -> None:
        """Queue again after :meth:`close` (a server reopening its logs): the handler is
        batched again, and the writer thread starts with the next record."""
        with self._cond:
            if self._thread is None:
                self.stopped = False
                self._closing = False
                self._register()

    def after_fork_in_child(self) -> None:
        """Start empty in a forked child: the parent writes what it had queued.

        Threads do not survive fork and the condition's lock may have been held
        by the parent's writer at the moment of the fork, so everything is new.
        """
        self._reset()
