"""A handler's entry points besides ``emit``: reopen, rotate, close, flush, fork.

Each one enters the handler's :class:`~mplog._lifecycle.ThreadGuard` first.  Called
from a signal handler (or a ``__del__``) that interrupted this very thread inside
the handler, it never waits: a close, reopen or rollover is deferred until the
interrupted call leaves (see :mod:`mplog._lifecycle`).  An exception that
leaves one releases what the thread may still hold
(:meth:`~mplog._handler_parts.HandlerParts._let_go`).
"""

from __future__ import annotations

import io
import logging
import time

from ._compression_scheduler import after_fork_in_child as archive_after_fork
from ._handler_parts import HandlerParts
from ._lifecycle import entry_point, released

__all__ = ["EntryPoints"]


class EntryPoints(HandlerParts):
    """The lifecycle methods of :class:`mplog.ConcurrentRotatingFileHandler`."""

    @entry_point
    def _open(self) -> io.FileIO | None:  # type: ignore[override]
        """Open the log file for appending (bytes, unbuffered) and return it.

        Called by the stdlib's machinery and, after :meth:`close`, by servers that
        reopen their logs (gunicorn's ``reopen_files``): the handler is then what it
        was before, batched mode included.  Called from a signal handler that
        interrupted this handler, it returns the current stream and reopens once
        the interrupted call is done (see :mod:`mplog._lifecycle`).
        """
        if not self._guard.enter():
            self._guard.defer(self._reopen)
            return self._file.stream
        try:
            if self._batch is not None:
                self._batch.reopen()
            with self._lock:
                self._file.close()
                return self._open_file()
        except BaseException as error:
            self._let_go(error)
            raise
        finally:
            self._guard.leave()

    def _reopen(self) -> None:
        self._open()

    def _open_file(self) -> io.FileIO:
        return self._file.open()

    @entry_point
    def doRollover(self) -> None:
        """Rotate the file now, holding the inter-process lock (never a device or pipe).

        Like every record, it first cuts off a record torn by a writer that died.
        A failure goes to :meth:`handleError`, never to the caller.
        """
        if not self._guard.enter():  # from a signal handler that interrupted this handler
            self._guard.defer(self.doRollover)
            return
        try:
            if self._batch is not None:
                self._batch.flush()
            with self._lock as shared:
                self._file.settle(shared, time.time(), check=True)
                if not self._file.regular:  # bpo-45401: renaming /dev/null breaks hosts
                    return
                self._rollover.rotate(self._file, shared, time_due=False)
        except BaseException as error:
            self._let_go(error)
            if not isinstance(error, Exception):
                raise
            # As for a rotation due by size or time: reported, never raised.
            self._reporter.report(f"rotating {self.baseFilename} failed", error)
        finally:
            self._guard.leave()

    @entry_point
    def close(self) -> None:
        """Write out the batched queue, finish compressing, close the log and lock files.

        The handler stays usable: a later record, or :meth:`_open`, opens them again.
        Called from a signal handler that interrupted this handler (gunicorn's log
        reopening), it returns at once and closes when the interrupted call is done.
        """
        if not self._guard.enter():
            self._guard.defer(self.close)
            return
        try:
            # Waiting for mplog's threads: not holding logging's locks (see mplog._batch).
            with released(self.lock):
                if self._batch is not None:
                    self._batch.close()
                if self._durability is not None:
                    self._durability.close()
                if self._archiver is not None:
                    self._archiver.close()
            # The log file is closed holding the log's thread lock, so no other thread is
            # writing (handle() holds no handler lock: see there).  Stay registered for
            # the fork hook: gunicorn's reopen_files() reopens a closed handler
            # (close(); _open()), and a worker forked after that must still get its own
            # lock descriptor.
            self._lock.close(self._file.detach)
            logging.Handler.close(self)
            self._reporter.closing()  # what a write failure still going on has cost
        except BaseException as error:
            self._let_go(error)
            raise
        finally:
            self._guard.leave()

    @entry_point
    def flush(self) -> None:
        """In batched mode, return once every queued record is in the file.

        In sync mode there is nothing to do: records reach the kernel before
        :meth:`emit` returns.  Called from inside this handler (a signal handler
        that interrupted it), it returns at once.
        """
        if self._batch is not None and self._guard.enter():
            try:
                with released(self.lock):  # logging.shutdown() holds it (see mplog._batch)
                    self._batch.flush()
            except BaseException as error:
                self._let_go(error)
                raise
            finally:
                self._guard.leave()

    def _before_fork(self) -> None:
        """Write out the batched queue, so the child starts empty and nothing queued
        before the fork is written twice (not from inside this handler: see flush)."""
        self.flush()

    def _after_fork(self) -> None:
        """In a forked child: take our own lock descriptor (see _lock.py), start empty."""
        archive_after_fork()
        self._guard.after_fork_in_child()
        self._reporter.after_fork_in_child()
        self._lock.forget()
        if self._durability is not None:
            self._durability.after_fork_in_child()
        if self._archiver is not None:
            self._archiver.after_fork_in_child()
        if self._batch is not None:
            self._batch.after_fork_in_child()
