"""Batched mode: a per-process writer thread that drains a bounded queue.

The calling thread formats and encodes the record and appends the bytes to
the queue; one background thread takes everything queued so far and hands it to
the handler, which writes it under ONE lock acquisition.  ``flush()`` returns
once everything queued before it is in the file; a full queue blocks the caller
(or, with ``overflow="drop"``, drops and counts).
"""

from __future__ import annotations

import threading
import weakref
from typing import Callable

from .lifecycle import at_exit, start_thread

__all__ = ["BatchWriter"]

WriteBatch = Callable[[list[bytes]], None]
OnError = Callable[[BaseException, int], None]

_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


def _flush_all() -> None:
    for writer in list(_writers):
        writer.flush()


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
        self._reset()

    def _reset(self) -> None:
        # Reentrant: a __del__ run by the garbage collector, or a signal handler, may
        # log from inside put() in the same thread.
        self._cond = threading.Condition(threading.RLock())
        self._pending: list[bytes] = []
        self._queued = 0  # records ever queued
        self._written = 0  # records ever taken care of (written or reported)
        self._idle = True
        self._closing = False
        self._thread: threading.Thread | None = None
        self._launching = False

    def put(self, data: bytes, block: bool = True) -> bool:
        """Queue *data*; return False if it was dropped because the queue is full.

        With *block* false (a record logged from inside the handler: a signal
        handler, a ``__del__``, the writer thread itself) a full queue that would
        block takes the record anyway: waiting could wait for this very thread.
        """
        with self._cond:
            while len(self._pending) >= self.max_records:
                if self.drop:
                    self.dropped += 1
                    return False
                if not block:
                    break
                self._cond.wait()
            self._pending.append(data)
            self._queued += 1
            if self._thread is None:
                if not self._launching:
                    self._start()
            elif self._idle:
                self._cond.notify_all()
        return True

    def _start(self) -> None:
        # A re-entrant put() meanwhile leaves its record to this writer: see start_thread.
        start_thread(self, self._run, "mplog-writer")
        _writers.add(self)
        at_exit(_flush_all, first=True)  # queues are written out before anything else

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._pending and not self._closing:
                    self._idle = True
                    cond.wait()
                self._idle = False
                batch, self._pending = self._pending, []
                upto = self._queued
                cond.notify_all()  # room in the queue for blocked producers
            if batch:
                try:
                    self._write_batch(batch)
                except Exception as err:
                    self._on_error(err, len(batch))
            with cond:
                self._written = upto
                cond.notify_all()  # wake flush()
                if self._closing and not self._pending:
                    return

    def flush(self) -> None:
        """Return once every record queued before this call is written (or reported)."""
        with self._cond:
            target = self._queued
            while self._written < target and self._thread is not None:
                if not self._thread.is_alive():  # pragma: no cover - the thread never dies
                    break
                self._cond.wait()

    def close(self) -> None:
        """Flush, then stop the writer thread for good.

        A record logged after this (``logging.shutdown()`` closed the handler, but
        an ``atexit`` function or a ``__del__`` still logs) must not start a thread
        that nothing would flush: :attr:`stopped` tells the handler to write it
        synchronously.
        """
        with self._cond:
            thread = self._thread
            self.stopped = True
            self._closing = True
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._thread = None
            self._closing = False

    def reopen(self) -> None:
        """Queue again after :meth:`close` (a server reopening its logs): the handler is
        batched again, and the writer thread starts with the next record."""
        with self._cond:
            self.stopped = False

    def after_fork_in_child(self) -> None:
        """Start empty in a forked child: the parent writes what it had queued.

        Threads do not survive fork and the condition's lock may have been held
        by the parent's writer at the moment of the fork, so everything is new.
        """
        self._reset()
