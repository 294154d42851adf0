"""The multi-process safe rotating file handlers.

Per record, :meth:`ConcurrentRotatingFileHandler.emit` is a template: format and
encode once, then queue the bytes (batched mode) or append them to the active
file under the inter-process lock (:mod:`mplog._active`, which rotates first
when :mod:`mplog._rollover` says so), then report a failure through
:meth:`~logging.Handler.handleError` (:mod:`mplog._reporting`).  The record is in
the kernel when ``emit`` returns.  What every process does on disk is specified
in PROTOCOL.md.

Here: the public classes, their documented signature, and the write path.  The
arguments are captured once, by name, into :class:`mplog._options.Arguments`,
parsed into :class:`~mplog._options.Options` and pickled from there.  The rest of
the class is grouped by concern, each group a base class in its own module, so
that it stays methods of the handler (what the stdlib and servers call) without
delegation or an extra call on the write path:

* :mod:`mplog._handler_parts`: the parts (options, lock, active file, rotation,
  compression, batching, durability, lifecycle guard), built from the options,
  and what they call back;
* :mod:`mplog._handler_surface`: the stdlib's attributes and methods
  (``stream``, ``maxBytes``, ``backupCount``, ``rolloverAt``, ``shouldRollover``...);
* :mod:`mplog._handler_entry`: ``_open``, ``doRollover``, ``close``, ``flush`` and
  the fork hooks, each entered through the re-entry guard (:mod:`mplog._lifecycle`);
* :mod:`mplog._handler_batched`: batched mode's queueing and writing.
"""

from __future__ import annotations

import datetime
import logging
import sys
import threading
from typing import Any

from ._compressors import CompressLike
from ._durability import FsyncLike
from ._first_line import HeaderLike
from ._handler_batched import BatchedWrites
from ._handler_entry import EntryPoints
from ._handler_surface import StdlibSurface
from ._lifecycle import entry_point, track
from ._options import Arguments, Options, PathLike, log_path
from ._permissions import Owner, explained_open_errors
from ._rollover import ROTATION_RETRY
from ._schema import InitSignature, check_handler_keywords
from ._units import DurationLike, SizeLike
from .exceptions import ReentrantLogging

__all__ = ["ROTATION_RETRY", "ConcurrentRotatingFileHandler", "ConcurrentTimedRotatingFileHandler"]

_get_ident = threading.get_ident
_is_finalizing = sys.is_finalizing
#: Since Python 3.12 ``Filterer.filter`` returns the record it passes, not True.
_FILTER_RETURNS_RECORD = sys.version_info >= (3, 12)


class ConcurrentRotatingFileHandler(StdlibSurface, EntryPoints, BatchedWrites):
    """Append records to *filename* from any number of processes, rotating it by size and/or time.

    Positional arguments are those of :class:`logging.handlers.RotatingFileHandler`;
    the time arguments of :class:`logging.handlers.TimedRotatingFileHandler` and the
    keyword arguments of ``concurrent_log_handler.ConcurrentRotatingFileHandler``
    are accepted as keywords, with the same meaning.

    :param filename: the log file (``str`` or path-like); a missing directory is created.
        ``{hostname}`` in it is replaced by :func:`socket.gethostname` (see
        :mod:`mplog._placeholders`); other braces are kept as written.
    :param mode: ``"a"`` (default) or ``"w"``: truncate the file when this handler
        first opens it, but only if no other handler, in any process, has it open
        then (a new file per run of a whole fleet; see :mod:`mplog._presence`).
    :param maxBytes: rotate before a record would make the file larger than this
        many bytes; ``0`` disables size rotation.  Accepts ``"10 MB"``, ``"512KiB"``.
        A single record larger than *maxBytes* is written whole into a fresh file.
    :param backupCount: how many rotated files to keep; ``0`` keeps all time-named
        backups, and (as in the stdlib) disables size rotation when there is no
        *when* (a *maxBytes* given then draws a :class:`UserWarning`).
    :param encoding: text encoding of the file (default UTF-8, the same in every process).
        One with a byte-order mark (``"utf-8-sig"``, ``"utf-16"``, ``"utf-32"``) marks
        each file once, at its start, as the stdlib's FileHandler does.
    :param delay: open the file (and the lock file) only at the first record.
    :param errors: how to handle unencodable characters (``"strict"`` by default);
        ``unicode_error_policy`` is concurrent-log-handler's name for it.
    :param when: time rotation as in ``TimedRotatingFileHandler`` (``"S"``, ``"M"``,
        ``"H"``, ``"D"``, ``"midnight"``, ``"W0"``-``"W6"``), or a duration
        (``"6 hours"``, ``"1 day"``: whole days rotate at midnight); ``None`` for size only.
    :param interval: multiplier of *when*.
    :param utc: use UTC instead of local time for *when* and the file names.
    :param atTime: time of day for ``"midnight"`` and weekly rotation
        (a ``datetime.time`` or ``"HH:MM[:SS]"``).
    :param lock_file_directory: where to keep the lock file (default: next to
        the log).  It is named like concurrent-log-handler's (``.__app.lock``), so
        both libraries exclude each other during a migration; the presence file
        (``.__app.open``, :mod:`mplog._presence`) lives beside it.
    :param lock_timeout: seconds (or ``"5 s"``, a ``timedelta``) to wait for the lock
        before the record goes to :meth:`handleError` (``None``: wait for ever).
    :param chmod: exact permission bits of every file mplog creates: ``0o640``,
        ``"0640"``, ``"640"`` or ``"u=rw,g=r"`` (an int that is no sensible mode,
        such as the decimal ``640``, is refused; see :mod:`mplog._permissions`).
    :param umask: alternative to *chmod*: created files get ``0o666 & ~umask``.
    :param owner: ``(user, group)`` names or ids given to every file mplog creates.
    :param newline: ``None`` translates ``"\\n"`` to ``os.linesep``; ``""`` or
        ``"\\n"`` write line ends untranslated.
    :param terminator: appended to every record (default ``"\\n"``).
    :param keep_file_open: ``False`` closes the log file after every record.
    :param debug: report rotations on standard error.
    :param watch_interval: how often (seconds) each process stats the path to
        notice a file renamed, deleted or truncated by another program
        (logrotate); ``0`` checks before every record.  Rotations by mplog
        processes are noticed at the next record, whatever this is.
    :param compress: compress rotated files: ``"gzip"``, ``"bz2"``, ``"xz"``,
        ``"zstd"`` (Python 3.14, or the ``zstd`` extra), or a function with a
        ``suffix`` attribute (``".lz4"``) that takes a path, writes
        ``path + suffix`` next to it and returns that path.
        A background thread compresses, never holding the writers' lock;
        :meth:`close` waits for it and compresses whatever is left.
    :param compress_delay: compress a backup only once its last record is this old
        (seconds, ``timedelta`` or ``"30 s"``; default 30 s), so that a log shipper
        that is behind can still read it plain; ``0`` compresses at once.
        Backups younger than this at :meth:`close` are left plain for the next sweep
        (see :mod:`mplog._compression_scheduler`).
    :param use_gzip: concurrent-log-handler's spelling of ``compress="gzip"``.
    :param max_age: also delete backups last written longer ago than this
        (seconds, ``timedelta`` or ``"7 days"``), at each rotation.
    :param max_total_size: also delete the oldest backups while all of them
        together take more than this (bytes or ``"1 GB"``), at each rotation.
    :param batched: format in the calling thread, write from a background thread
        many records per lock acquisition.  :meth:`flush`, :meth:`close`,
        interpreter exit and ``os.fork()`` write out the queue; a SIGKILL loses
        at most what is queued.
    :param queue_size: batched mode's queue bound, in records.
    :param overflow: what a full queue does in batched mode: ``"block"`` the
        caller (default) or ``"drop"`` the record (counted in :attr:`dropped`,
        reported once per episode through :meth:`handleError`).
    :param network_fs: the log is on a filesystem several hosts share (NFS, SMB...):
        write at the offset the shared state publishes, sync the data to the
        server before unlocking, identify files by inode alone.  ``None`` (the
        default) detects it from the mount table (Linux).  See :mod:`mplog._netfs`.
    :param fsync: put records on stable storage, not only in the kernel:
        ``True`` before each logging call returns (batched: each batch, before
        :meth:`flush` returns); a number of seconds (or ``"1 s"``) for a
        background sync at most that long after a write (group commit; ``0`` and
        ``1`` are refused as ambiguous: ``True``/``False`` or ``1.0``), at
        each rotation and at :meth:`close`.  Rotations and compression then
        sync the directory after renaming.  See :mod:`mplog._durability`.
    :param header: a line that starts every new file, written by the process that
        writes its first record: a format string with ``{id}`` (new for every file),
        ``{host}``, ``{pid}`` and ``{time}``, or a function returning the line.  Log
        shippers that recognize files by their first bytes then tell every file
        apart.  See :mod:`mplog._first_line`.

    .. versionadded:: 0.1
    """

    # A misspelled keyword gets "did you mean" on every path (direct, dictConfig,
    # fileConfig): __new__ sees the arguments before Python binds them to __init__.
    __signature__ = InitSignature()  # help() and inspect still show __init__'s parameters

    def __new__(cls, *args: Any, **kwargs: Any) -> ConcurrentRotatingFileHandler:
        check_handler_keywords(cls, kwargs, ConcurrentRotatingFileHandler)
        return super().__new__(cls)

    def __init__(
        self,
        filename: PathLike,
        mode: str = "a",
        maxBytes: SizeLike = 0,
        backupCount: int = 0,
        encoding: str | None = None,
        delay: bool = False,
        errors: str | None = None,
        *,
        when: str | DurationLike | None = None,
        interval: int = 1,
        utc: bool = False,
        atTime: datetime.time | str | None = None,
        lock_file_directory: PathLike | None = None,
        lock_timeout: DurationLike | None = None,
        chmod: int | str | None = None,
        umask: int | str | None = None,
        owner: Owner | None = None,
        newline: str | None = None,
        terminator: str = "\n",
        unicode_error_policy: str | None = None,
        keep_file_open: bool = True,
        debug: bool = False,
        use_gzip: bool = False,
        compress: CompressLike = None,
        compress_delay: DurationLike = 30.0,
        max_age: DurationLike | None = None,
        max_total_size: SizeLike | None = None,
        batched: bool = False,
        queue_size: int = 10_000,
        overflow: str = "block",
        watch_interval: float = 1.0,
        fsync: FsyncLike = False,
        network_fs: bool | None = None,
        header: HeaderLike = None,
    ) -> None:
        # Every argument, by name, once (the one list of options: see Arguments); no
        # other name may be bound before this line.
        given = Arguments(**{name: value for name, value in locals().items() if name != "self"})
        options = Options.parse(given)
        self._wire(log_path(filename), options)
        self.mode, self.delay = mode, delay
        self._arguments = given
        if not delay:
            try:  # errors name the log and the fix, not only the hidden lock file
                with explained_open_errors(self.baseFilename, self._lock.path), self._lock:
                    self._open_file()
            except BaseException:
                # Nobody else has this handler yet: let go of the descriptors at once
                # (a program retrying a bad configuration must not run out of them).
                self._file.detach()
                self._lock.discard()
                raise
        track(self)  # only now: a failed construction leaves no fork hook behind

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the configuration, not the state (descriptors, locks, threads, queue).

        The unpickled handler (in a spawn child, a process pool task) is an equivalent
        one on the same log: the same arguments, level, formatter, filters, name,
        ``namer``, ``rotator``, size and backup settings, taking the same inter-process
        lock, and opening the log at its first record.  It never truncates the log
        (``mode="w"`` is this process's, done once).  Attributes of a subclass are not
        carried: override ``__reduce__`` to add them.
        """
        config = {**self._arguments.as_dict(), "mode": "a", "delay": True}
        state = {
            "level": self.level,
            "formatter": self.formatter,
            "filters": self.filters,
            "name": self.name,
            "namer": self.namer,
            "rotator": self.rotator,
            "maxBytes": self.maxBytes,
            "backupCount": self.backupCount,
        }
        return _unpickle, (type(self), config, state)

    # -- the write path -------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter *record*, then emit it.

        What :meth:`logging.Handler.handle` does on Python 3.13 (a filter may
        return a replacement record, as since 3.12), except that the handler's own
        lock is not held around :meth:`emit`, which is thread-safe by itself (the
        log's lock, or the batched queue's).  A thread holding the handler's lock
        while it waits for the log's lock would hang a signal handler that takes
        the handler's lock (gunicorn's ``reopen_files`` does) in the thread that
        holds the log's lock through another handler of the same file.  Without
        filters (and with the stock ``filter`` method) the call to ``filter`` is
        skipped, and its result returned as it would have been.
        """
        if not self.filters and self._stock_filter:  # what filter() would return, without it
            self.emit(record)
            return record if _FILTER_RETURNS_RECORD else True
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return rv

    @entry_point
    def emit(self, record: logging.LogRecord) -> None:
        """Write *record* under the inter-process lock, rotating first if due.

        Failures go to :meth:`handleError`; the application never sees them.
        """
        threads = self._threads
        ident = _get_ident()
        if ident in threads:  # a signal handler or a __del__ interrupted this handler
            self._emit_reentrant(record)
            return
        threads[ident] = True  # inside, until the finally below (see mplog._lifecycle)
        try:
            formatter = self.formatter
            if self._plain_text and formatter is not None:  # _encode, without the calls
                data = (formatter.format(record) + self.terminator).encode(
                    self._codec, self._codec_errors
                )
            else:
                data = self._encode(record)
            batch = self._batch
            if batch is not None and not batch.stopped and not _is_finalizing():
                queued = batch.put(data, True)  # not through _enqueue: one call less
                if queued is not True or batch.dropped:
                    self._after_put(batch, data, queued)
            else:
                self._file.append(data)
                if self._reporter.episode is not None:
                    self._reporter.write_succeeded()
        except BaseException as error:
            self._let_go(error)
            if isinstance(error, RecursionError) or not isinstance(error, Exception):
                raise  # RecursionError as the stdlib does: see bpo-36272
            if not self._reporter.lost(error, 1):
                self.handleError(record)
        finally:
            threads.pop(ident, None)
            if self._deferred:
                self._guard.run_deferred(ident)

    def _emit_reentrant(self, record: logging.LogRecord) -> None:
        """A record logged while this thread is inside the handler: never wait.

        Batched, it is queued (past a full queue's bound if need be: the writer
        cannot make room while this thread waits). Sync, waiting for the lock
        could wait for this very thread: the record goes to :meth:`handleError`.
        The thread may also only seem inside, left marked by an exception that
        interrupted the end of an earlier call: then the record is written as usual.
        """
        if self._guard.stale(_get_ident()):
            self.emit(record)
            return
        try:
            batch = self._batch
            if batch is None or batch.stopped:
                raise ReentrantLogging(self._lock.path)
            self._enqueue(self._encode(record), block=False)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _unpickle(
    cls: type[ConcurrentRotatingFileHandler], config: dict[str, Any], state: dict[str, Any]
) -> ConcurrentRotatingFileHandler:
    """Rebuild a handler pickled by :meth:`ConcurrentRotatingFileHandler.__reduce__`."""
    handler = cls.__new__(cls)
    ConcurrentRotatingFileHandler.__init__(handler, **config)
    handler.setLevel(state["level"])
    handler.setFormatter(state["formatter"])
    handler.filters = list(state["filters"])
    handler.set_name(state["name"])
    handler.namer, handler.rotator = state["namer"], state["rotator"]
    handler.maxBytes, handler.backupCount = state["maxBytes"], state["backupCount"]
    return handler


class ConcurrentTimedRotatingFileHandler(ConcurrentRotatingFileHandler):
    """Rotate by time (and optionally by size), safely from many processes.

    Positional arguments are those of :class:`logging.handlers.TimedRotatingFileHandler`;
    *maxBytes* and every option of :class:`ConcurrentRotatingFileHandler` are
    accepted as keywords.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        filename: PathLike,
        when: str | DurationLike = "h",
        interval: int = 1,
        backupCount: int = 0,
        encoding: str | None = None,
        delay: bool = False,
        utc: bool = False,
        atTime: datetime.time | str | None = None,
        errors: str | None = None,
        *,
        maxBytes: SizeLike = 0,
        mode: str = "a",
        **options: Any,
    ) -> None:
        super().__init__(
            filename,
            mode,
            maxBytes,
            backupCount,
            encoding,
            delay,
            errors,
            when=when,
            interval=interval,
            utc=utc,
            atTime=atTime,
            **options,
        )

    def computeRollover(self, currentTime: float) -> float:
        """Return the next rollover instant after *currentTime* (stdlib-compatible)."""
        assert self._schedule is not None
        return self._schedule.next_rollover(currentTime)
