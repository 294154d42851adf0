"""The parts of a handler, built once from its parsed options, and what they call back.

:class:`HandlerParts` is the base of :class:`mplog.ConcurrentRotatingFileHandler`
and of the groups of its methods kept in their own modules
(:mod:`mplog._handler_surface`, :mod:`mplog._handler_entry`,
:mod:`mplog._handler_batched`): it names every part a handler holds, builds them
(:meth:`HandlerParts._wire`) and holds the small methods the parts call back
(reports, the shared time boundary, the start of each new file).  Each of those
is a bound method that says what it is, not a lambda.  :meth:`HandlerParts._let_go`,
the last layer of cleanup of every entry point, lives here too: every group uses it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time
from typing import Callable

from ._active import ActiveFile
from ._backups import Backups
from ._batch import BatchWriter
from ._compression_scheduler import CompressionScheduler
from ._compressors import Compressor
from ._durability import Durability
from ._lifecycle import ThreadGuard
from ._lock import InterProcessLock, is_special_file, lock_path_for
from ._netfs import is_network_filesystem, is_nfs, local_locks_only, lock_is_remote
from ._options import Arguments, Options
from ._permissions import FilePermissions
from ._presence import Presence, presence_path_for
from ._reporting import Reporter, mplog_record
from ._rollover import Pruner, Rollover, SizeLimit
from ._triggers import TimeSchedule, TimeTrigger
from .exceptions import ReentrantLogging

__all__ = ["HandlerParts"]

_RLOCK = type(threading.RLock())


class HandlerParts(logging.handlers.BaseRotatingHandler):
    """What every mplog handler holds, and how it is built from its options.

    Not a handler by itself: :class:`mplog.ConcurrentRotatingFileHandler` parses
    its arguments, then calls :meth:`_wire`.
    """

    # Set by the handler's __init__ and _wire.
    _options: Options
    _schedule: TimeSchedule | None
    _compressor: Compressor | None
    compress_delay: float
    _permissions: FilePermissions
    debug: bool
    _backups: Backups
    _arguments: Arguments  # as given (what pickling carries)
    _codec: str
    _codec_errors: str
    _newline: str
    _plain_text: bool
    _reporter: Reporter
    _lock: InterProcessLock
    _guard: ThreadGuard
    _threads: dict[int, bool]  # the guard's (see _wire)
    _deferred: dict[int, list[tuple[Callable[[], object], Callable[[Exception], None]]]]
    _stock_filter: bool
    _durability: Durability | None
    _archiver: CompressionScheduler | None
    _rollover: Rollover
    _file: ActiveFile
    _batch: BatchWriter | None
    # The batched writer's callbacks (mplog._handler_batched.BatchedWrites).
    _write_batch: Callable[[list[bytes]], None]
    _report_batch_error: Callable[[BaseException, int], None]

    def _wire(self, path: str, options: Options) -> None:
        """Build the parts from the parsed *options*; open nothing yet."""
        self._options = options
        self._schedule = options.schedule
        self._compressor = options.compressor
        self.compress_delay = options.compress_delay
        self._permissions = options.permissions
        self.terminator = options.terminator
        self.debug = options.debug
        # Records are encoded without a byte-order mark; each file gets one (_file_start).
        self._codec, self._codec_errors, self._newline = (
            options.record_encoding,
            options.errors,
            options.newline,
        )
        # Nothing to translate, and format() is Handler's: emit formats and encodes inline.
        self._plain_text = self._newline == "\n" and type(self).format is logging.Handler.format
        self._reporter = reporter = Reporter(self._handle_error, path)
        self._permissions.report = self._report_chown
        network = is_network_filesystem(path) if options.network_fs is None else options.network_fs
        lock_path = lock_path_for(path, options.lock_file_directory)
        # On NFS the shared state bypasses the client's cache (and any delegation).
        direct = network and is_nfs(lock_path)
        # Whether each try at the lock asks a server (mplog._lock): lock_file_directory
        # may put the lock file on another filesystem than the log.
        remote_lock = (
            network
            if options.lock_file_directory is None
            else lock_is_remote(lock_path, path, network)
        )
        # One lock per lock file per process, and one record of the threads inside:
        # every handler of this log in this process shares them (see mplog._lock).
        self._lock = InterProcessLock(
            lock_path,
            options.lock_timeout,
            self._permissions,
            path,
            direct,
            process_wide=True,
            network=remote_lock,
        )
        self._guard = ThreadGuard(self._report_deferred, self._lock.inside, self._lock.deferred)
        # The guard's dictionaries, for emit: one attribute lookup each, not two.
        self._threads, self._deferred = self._guard.threads, self._guard.deferred
        # handle() skips filter() while there are no filters, unless a subclass has its own.
        self._stock_filter = type(self).filter is logging.Filterer.filter
        # FileHandler sets baseFilename, mode, encoding, errors and self.stream (None).
        super().__init__(path, "a", encoding=options.encoding, delay=True, errors=options.errors)
        self._durability = Durability.create(options.fsync, reporter)
        limit = SizeLimit(options.max_bytes, options.backup_count, self._schedule is not None)
        self._backups = Backups(
            path,
            self.rotation_filename,
            limit.count,
            None if self._schedule is None else self._schedule.suffix_pattern,
            options.suffixes,
            options.retention,
        )
        pruner = Pruner(self._backups, reporter, self._debug)
        self._archiver = None
        if self._compressor is not None:
            self._archiver = CompressionScheduler(
                path,
                self._compressor,
                self._lock,
                self._backups.files,
                self._backups.locate,
                self._permissions,
                reporter,
                self._debug,
                delay=self.compress_delay,
                durable=self._durability is not None,
                retain=pruner.prune,
            )
        self._rollover = Rollover(
            self._backups,
            limit,
            self._time_trigger(path),
            self.rotate,
            self._archiver,
            pruner,
            reporter,
            self._debug,
        )
        self._file = ActiveFile(
            path,
            self._lock,
            self._permissions,
            reporter,
            self._durability,
            self._rollover,
            network=network,
            watch_interval=options.watch_interval,
            truncate=options.truncate,
            presence=None
            if is_special_file(path)
            else Presence(presence_path_for(lock_path), self._permissions, self._settings),
            keep_open=options.keep_file_open,
            local_locks=network and local_locks_only(path),
            file_start=self._file_start if options.bom or options.header else None,
        )
        self._batch = None
        if options.batched:
            self._batch = BatchWriter(
                self._write_batch,
                self._report_batch_error,
                options.queue_size,
                options.drop_when_full,
            )

    def _time_trigger(self, path: str) -> TimeTrigger | None:
        if self._schedule is None:
            return None
        try:
            start = os.stat(path).st_mtime
        except OSError:
            start = time.time()
        return TimeTrigger(self._schedule, start, self._read_boundary, self._write_boundary)

    # -- what the parts call back ---------------------------------------------------

    def _handle_error(self, record: logging.LogRecord) -> None:
        """:meth:`handleError`, looked up at each call: one set on the instance counts."""
        self.handleError(record)

    def _report_deferred(self, error: BaseException) -> None:
        """A close, reopen or rollover deferred by re-entry failed when it ran."""
        self._reporter.report("a close, reopen or rollover deferred by re-entry", error)

    def _report_chown(self, path: str, error: OSError) -> None:
        if self._reporter.first("chown"):
            self.handleError(
                mplog_record(
                    "cannot give %s to owner %s (uid, gid): %s; the files mplog creates keep "
                    "this process's owner (reported once)",
                    path,
                    self._permissions.owner,
                    error,
                )
            )

    def _read_boundary(self) -> float | None:
        return self._lock.shared.boundary

    def _write_boundary(self, value: float) -> None:
        self._lock.shared.boundary = value

    def _settings(self) -> str:
        """The rotation settings every process on the log should share, as one line
        (recorded in the presence file, see :mod:`mplog._presence`)."""
        schedule = self._schedule
        when = "None" if schedule is None else f"{schedule.when} interval={schedule.interval}s"
        limit = self._rollover.limit
        return f"maxBytes={limit.max_bytes} backupCount={limit.backup_count} when={when}"

    def _file_start(self) -> bytes:
        """What a new file starts with, before its first record: the encoding's
        byte-order mark and the ``header`` line, if any (see ActiveFile.write)."""
        options = self._options
        if options.header is None:
            return options.bom
        text = options.header() + self.terminator
        if self._newline != "\n":
            text = text.replace("\n", self._newline)
        return options.bom + text.encode(self._codec, self._codec_errors)

    def _debug(self, message: str) -> None:
        if self.debug:
            print(f"mplog[{os.getpid()}]: {message}", file=sys.stderr)

    # -- every entry point --------------------------------------------------------------

    def _encode(self, record: logging.LogRecord) -> bytes:
        text = self.format(record) + self.terminator
        if self._newline != "\n":
            text = text.replace("\n", self._newline)
        return text.encode(self._codec, self._codec_errors)

    def _let_go(self, error: BaseException) -> None:
        """An exception leaves an entry point that entered the handler: release what
        this thread may still hold, unless the exception says an outer caller holds it.

        The last layer of cleanup (see mplog._lock): an exception that arrived where a
        ``with`` statement leaves its block, before it called ``__exit__`` (possible
        on every Python for a trace function, and for a signal on 3.9 and 3.10), left
        the lock held.  The parts' locks are reentrant (an ``RLock`` records its
        owner), and nothing of this log is held by an outer caller of an entry point
        that entered the guard, so what this thread owns now is left over.
        """
        if isinstance(error, ReentrantLogging):
            return
        self._lock.let_go()
        parts = (
            (self._batch, "_cond"),
            (self._archiver, "_state"),
            (self._durability, "_cond"),
        )
        for part, name in parts:
            lock = getattr(part, name, None)
            lock = getattr(lock, "_lock", lock)  # a Condition's lock
            if isinstance(lock, _RLOCK):  # only an RLock knows its owner
                while lock._is_owned():  # type: ignore[attr-defined]
                    lock.release()
