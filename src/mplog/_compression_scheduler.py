"""Compressing rotated files in the background, without holding the writers' lock.

After a rotation the handler calls :meth:`CompressionScheduler.request`; a background
thread (one per handler, started on demand, at low CPU priority on Linux)
sweeps the log's backups: it removes the temporary files crashes left
(:func:`mplog._claims.clean_leftovers`), then compresses every
uncompressed backup, newest first, one at a time with
:class:`mplog._compress_backup.BackupCompressor`, which keeps that safe against
other processes compressing, rotating and pruning the same files, and against
crashes.  Writers never wait for a compression: the writers' lock is held only
to commit its result, and to apply retention once more at the end of the sweep
(:attr:`CompressionScheduler.retain`): retention spares a backup while it is being compressed,
and this is where it goes.  A name that is not what mplog expects (a directory,
symbolic link or FIFO named like a backup or a temporary file, a callable's output
swapped for one) is left alone and reported once (:mod:`mplog._untrusted`); it
never stops the sweep.  While the thread runs, further requests make it sweep
once more; where no thread can be started (interpreter shutdown, no threads
left) the caller sweeps, unless it holds the writers' lock.  What each sweep does
on disk is PROTOCOL.md's section 6.

**Delay.**  With a *delay* (the handler's ``compress_delay``), a backup whose last
record (its modification time) is younger than the delay is left plain, so a log
shipper that is up to that far behind still reads it; the sweep arms a timer
(a daemon thread) for the youngest one, which requests another sweep when it is
due, without waiting for a rotation.  By the modification time, not the
rotation: the last write is when a shipper's lag starts to count, and renames
that shift numbered backups (``.1`` -> ``.2``) do not restart it.

:meth:`CompressionScheduler.close` cancels the timer, waits for the thread and sweeps once
more, which also finishes or removes what a crash left, so once every process
has closed its handler no backup older than the delay is left uncompressed.
One younger than that at the last close stays plain, readable, until the next
sweep of any process on the log (its next rotation or close).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Callable

from ._backups import Backup, group_backups
from ._claims import after_fork_in_child, clean_leftovers, discard, is_claimed, temp_prefix
from ._compress_backup import BackupCompressor, Locate
from ._compressors import Compressor
from ._lifecycle import background, collection_paused, start_thread
from ._lock import InterProcessLock
from ._permissions import FilePermissions
from ._priority import lower_this_thread
from ._reporting import Reporter
from ._untrusted import UnexpectedFile

__all__ = ["CompressionScheduler", "after_fork_in_child", "discard", "is_claimed"]

ListBackups = Callable[[], list[Backup]]


class CompressionScheduler:
    """Compresses one log's backups in the background; see the module docstring.

    :param base: the active log file's path.
    :param compressor: what to compress with.
    :param lock: the writers' lock, held only to commit.
    :param backups: lists the log's backups, every form, oldest first.
    :param locate: ``locate(file_id, hint)`` returns the current name of the
        uncompressed backup with that ``(st_dev, st_ino)``, looking at *hint*
        first, or None (called with the writers' lock held).
    :param permissions: mode and owner of compressed files.
    :param reporter: the handler's failure reports: the same kind of failure is
        reported once until a sweep succeeds.
    :param debug: called with a message for each file compressed.
    :param durable: make each commit durable (``fsync=`` on): sync the directory
        after naming the archive, before the original goes.
    :param delay: seconds a backup's last write must be old before it is compressed.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        base: str,
        compressor: Compressor,
        lock: InterProcessLock,
        backups: ListBackups,
        locate: Locate,
        permissions: FilePermissions,
        reporter: Reporter,
        debug: Callable[[str], None],
        delay: float = 0.0,
        *,
        durable: bool = False,
        retain: Callable[[], None] | None = None,
    ) -> None:
        self.base = base
        self._lock = lock
        self._backups = backups
        self._reporter = reporter
        self.delay = delay
        self.clock: Callable[[], float] = time.time  # replaceable in tests
        self._prefix = temp_prefix(base)
        self._one = BackupCompressor(
            base, compressor, lock, locate, permissions, debug, durable=durable
        )
        #: Applies retention (writers' lock held; :meth:`mplog._rollover.Pruner.prune`).
        #: Each sweep ends with it: a backup retention spared while it was being
        #: compressed goes once the compression let go of it.
        self.retain = retain
        self._odd: set[object] = set()  # the odd names reported (see _unexpected)
        self._after_fork()

    def _after_fork(self) -> None:
        self._state = threading.RLock()  # a __del__ in the thread may rotate and request
        self._pending = False
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None  # wakes the thread for a deferred backup
        self._timer_due = 0.0

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Hold the state lock, with the garbage collector paused: a thread that holds
        the writers' lock (rotating) may wait for it, so a ``__del__`` or a collector's
        callback that logs, and so waits for the writers' lock, must not run in a
        thread holding it (:func:`mplog._lifecycle.collection_paused`)."""
        with collection_paused(), self._state:
            yield

    def after_fork_in_child(self) -> None:
        """In a forked child: let go of the parent's claims without releasing them
        (see :meth:`BackupCompressor.after_fork_in_child`), with no thread nor timer."""
        self._one.after_fork_in_child()
        self._after_fork()

    # -- scheduling ------------------------------------------------------------------

    def request(self) -> None:
        """Compress the log's uncompressed backups soon, in the background.

        Cheap, and safe while holding the writers' lock: only if no thread can be
        started does it sweep in the caller, and then not while the caller holds it.
        """
        with self._held():
            self._pending = True
            try:
                # Not a daemon (whatever thread asks: the batched writer is one), so the
                # interpreter, and a multiprocessing child, wait for it at exit.  A thread
                # running (or starting) already sweeps again before it ends.
                start_thread(self, self._run, "mplog-compress", daemon=False)
                return
            except RuntimeError:  # interpreter shutdown, or no threads left: do it now
                self._pending = False
        if not self._lock.owned():  # else: the next rotation or close()
            self.sweep()

    def _run(self) -> None:
        lower_this_thread()  # compress with the CPU time the writers leave (mplog._priority)
        while True:
            with self._held():
                if not self._pending:
                    self._thread = None
                    return
                self._pending = False
            try:
                self.sweep()
            except BaseException as error:  # a callable's SystemExit: threading would say nothing
                self._failed(error)

    def close(self) -> None:
        """Cancel the timer, wait for the background thread, then sweep once more
        in this thread, compressing every backup older than the delay.

        The last sweep also picks up what a process killed mid-compression left.
        Younger backups are left plain: waiting for them could take the whole delay.
        """
        if self._lock.owned():
            # close() from a signal handler that interrupted this thread's emit (as
            # gunicorn's reopen_files does): waiting, or sweeping, needs the lock this
            # thread holds.  Let the background thread do it once emit lets go.
            self.request()
            return
        with self._held():
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._held():  # after the join: the thread's last sweep may have armed it
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._sweep(schedule=False)

    def _schedule(self, due: float) -> None:
        """Sweep again at *due* (a clock time), unless a timer already does it sooner."""
        with self._held():
            if self._timer is not None and self._timer_due <= due:
                return
            if self._timer is not None:
                self._timer.cancel()
            timer = background(threading.Timer(max(0.0, due - self.clock()), self._wake))
            timer.name, timer.daemon = "mplog-compress-timer", True  # never delays exit
            try:
                timer.start()
            except RuntimeError:  # interpreter shutdown: the next process compresses it
                return
            self._timer, self._timer_due = timer, due

    def _wake(self) -> None:
        with self._held():
            if self._timer is not threading.current_thread():
                return  # cancelled, or replaced by a sooner one
            self._timer = None
        if not sys.is_finalizing():
            self.request()

    # -- one pass ----------------------------------------------------------------------

    def sweep(self) -> None:
        """Clean up temporary files left by crashes, then compress every uncompressed
        backup nobody else is compressing and older than the delay, newest first;
        arm the timer for the younger ones.  Never raises: a failure is reported
        (once until a sweep succeeds) and the other backups go on."""
        self._sweep(schedule=True)

    def _sweep(self, schedule: bool) -> None:
        failed = False
        first_due: float | None = None  # the first deferred backup's time
        try:
            backups = self._backups()
            directories = {os.path.dirname(self.base)} | {
                os.path.dirname(backup.path) for backup in backups
            }
            for directory in sorted(directories):
                for odd in clean_leftovers(directory, self._prefix):
                    self._unexpected(odd)
        except Exception as error:
            self._failed(error)
            return
        for group in reversed(group_backups(backups)):
            plain = [backup for backup in group if not backup.suffix]
            if not plain:
                continue
            try:
                due = self._one.compress(
                    plain[0], [b for b in group if b.suffix], self.delay, self.clock
                )
            except UnexpectedFile as odd:  # left alone; the others go on
                self._unexpected(odd)
                continue
            except Exception as error:
                failed = True
                self._failed(error)
                continue
            if due is not None:
                first_due = due if first_due is None else min(first_due, due)
        # Recovered only if retention worked too: it reports under the same topic.
        if not self._retain() and not failed:
            self._reporter.recovered("compress")
        if schedule and first_due is not None:
            self._schedule(first_due)

    def _retain(self) -> bool:
        """Apply retention, which reports its own failures: the backups it spared
        because they were being compressed (by this sweep or another process's, which
        ends with this too) are no longer claimed, or their claimant retains after us.
        Return True if taking the lock for it failed (reported here)."""
        if self.retain is None:
            return False
        try:
            with self._lock:
                self._one.revalidate_lock()
                self.retain()
        except Exception as error:
            self._failed(error)
            return True
        return False

    def _unexpected(self, error: OSError) -> None:
        """Report a name that is not what mplog expected, left alone: once per name,
        or for this process's own temporary names (made anew at each attempt, as
        for a callable's output swapped for a symbolic link), once per kind."""
        path = os.fspath(error.filename) if error.filename is not None else ""
        key: object = path
        if os.path.basename(path).startswith(temp_prefix(self.base, os.getpid())):
            key = ("temporary", os.path.dirname(path), error.strerror)
        if key in self._odd:
            return
        self._odd.add(key)
        message = f"skipped {path} while compressing the backups of {self.base}"
        self._reporter.report(message, error)

    def _failed(self, error: BaseException) -> None:
        """Report *error* (we are inside its ``except``) unless it was already."""
        message = f"compressing the backups of {self.base} failed"
        self._reporter.once("compress", message, error, by_kind=True)
