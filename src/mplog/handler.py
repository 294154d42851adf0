"""The multi-process safe rotating file handlers.

Per record, :meth:`ConcurrentRotatingFileHandler.emit` is a template: format and
encode once, then queue the bytes (batched mode) or append them to the active
file under the inter-process lock (:mod:`mplog.active`, which rotates first
when :mod:`mplog.rollover` says so), then report a failure through
:meth:`~logging.Handler.handleError` (:mod:`mplog.reporting`).  The record is in
the kernel when ``emit`` returns.  The handler class keeps the stdlib's surface
(``shouldRollover``, ``doRollover``, ``rolloverAt``, ``namer``/``rotator``) and
wires the parts: options (:mod:`mplog.options`), lock (:mod:`mplog.lock`),
active file, rotation, compression (:mod:`mplog.archive`), batching
(:mod:`mplog.batch`), durability (:mod:`mplog.durability`) and the thread,
fork and exit lifecycle (:mod:`mplog.lifecycle`).  What every process does on
disk is specified in PROTOCOL.md.
"""

from __future__ import annotations

import datetime
import io
import logging
import logging.handlers
import os
import re
import stat
import sys
import threading
import time
from typing import Any

from .active import ActiveFile
from .archive import Archiver
from .archive import after_fork_in_child as archive_after_fork
from .batch import BatchWriter
from .compression import CompressLike
from .durability import Durability, FsyncLike
from .exceptions import QueueFull, ReentrantLogging
from .first_line import HeaderLike
from .lifecycle import ThreadGuard, entry_point, released, track
from .lock import FileLock, is_special_file, lock_path_for
from .netfs import is_network_filesystem, is_nfs, local_locks_only
from .options import Options, PathLike, log_path, parse_backup_count
from .permissions import Owner, explained_open_errors
from .presence import Presence, presence_path_for
from .reporting import Reporter, mplog_record, print_report
from .rollover import ROTATION_RETRY, Rollover
from .rotation import Backups
from .schema import InitSignature, check_handler_keywords
from .triggers import TimeTrigger
from .units import DurationLike, SizeLike, parse_size

__all__ = ["ROTATION_RETRY", "ConcurrentRotatingFileHandler", "ConcurrentTimedRotatingFileHandler"]

_get_ident = threading.get_ident
_RLOCK = type(threading.RLock())


class ConcurrentRotatingFileHandler(logging.handlers.BaseRotatingHandler):
    """Append records to *filename* from any number of processes, rotating it by size and/or time.

    Positional arguments are those of :class:`logging.handlers.RotatingFileHandler`;
    the time arguments of :class:`logging.handlers.TimedRotatingFileHandler` and the
    keyword arguments of ``concurrent_log_handler.ConcurrentRotatingFileHandler``
    are accepted as keywords, with the same meaning.

    :param filename: the log file (``str`` or path-like); a missing directory is created.
        ``{hostname}`` in it is replaced by :func:`socket.gethostname` (see
        :mod:`mplog.placeholders`); other braces are kept as written.
    :param mode: ``"a"`` (default) or ``"w"``: truncate the file when this handler
        first opens it, but only if no other handler, in any process, has it open
        then (a new file per run of a whole fleet; see :mod:`mplog.presence`).
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
        (``.__app.open``, :mod:`mplog.presence`) lives beside it.
    :param lock_timeout: seconds (or ``"5 s"``, a ``timedelta``) to wait for the lock
        before the record goes to :meth:`handleError` (``None``: wait for ever).
    :param chmod: exact permission bits of every file mplog creates: ``0o640``,
        ``"0640"``, ``"640"`` or ``"u=rw,g=r"`` (an int that is no sensible mode,
        such as the decimal ``640``, is refused; see :mod:`mplog.permissions`).
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
        (see :mod:`mplog.archive`).
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
        default) detects it from the mount table (Linux).  See :mod:`mplog.netfs`.
    :param fsync: put records on stable storage, not only in the kernel:
        ``True`` before each logging call returns (batched: each batch, before
        :meth:`flush` returns); a number of seconds (or ``"1 s"``) for a
        background sync at most that long after a write (group commit; ``0`` and
        ``1`` are refused as ambiguous: ``True``/``False`` or ``1.0``), at
        each rotation and at :meth:`close`.  Rotations and compression then
        sync the directory after renaming.  See :mod:`mplog.durability`.
    :param header: a line that starts every new file, written by the process that
        writes its first record: a format string with ``{id}`` (new for every file),
        ``{host}``, ``{pid}`` and ``{time}``, or a function returning the line.  Log
        shippers that recognize files by their first bytes then tell every file
        apart.  See :mod:`mplog.first_line`.

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
        # What pickling carries (see __reduce__): the arguments, as given.
        config = {name: value for name, value in locals().items() if name != "self"}
        options = Options.parse(
            mode=mode,
            maxBytes=maxBytes,
            backupCount=backupCount,
            encoding=encoding,
            errors=errors,
            when=when,
            interval=interval,
            utc=utc,
            atTime=atTime,
            lock_file_directory=lock_file_directory,
            lock_timeout=lock_timeout,
            chmod=chmod,
            umask=umask,
            owner=owner,
            newline=newline,
            terminator=terminator,
            unicode_error_policy=unicode_error_policy,
            keep_file_open=keep_file_open,
            debug=debug,
            use_gzip=use_gzip,
            compress=compress,
            compress_delay=compress_delay,
            max_age=max_age,
            max_total_size=max_total_size,
            batched=batched,
            queue_size=queue_size,
            overflow=overflow,
            watch_interval=watch_interval,
            fsync=fsync,
            network_fs=network_fs,
            header=header,
        )
        self._wire(log_path(filename), options)
        self.mode, self.delay = mode, delay
        self._config = config
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

    def _wire(self, path: str, options: Options) -> None:
        """Build the parts from the parsed *options*; open nothing yet."""
        self.options = options
        self.schedule = options.schedule
        self.compressor = options.compressor
        self.compress_delay = options.compress_delay
        self.permissions = options.permissions
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
        # A lambda, not the bound method: a handleError set on the instance later counts.
        self._reporter = reporter = Reporter(lambda record: self.handleError(record), path)  # noqa: PLW0108
        self.permissions.report = self._report_chown
        network = is_network_filesystem(path) if options.network_fs is None else options.network_fs
        lock_path = lock_path_for(path, options.lock_file_directory)
        # On NFS the shared state bypasses the client's cache (and any delegation).
        direct = network and is_nfs(lock_path)
        # One lock per lock file per process, and one record of the threads inside:
        # every handler of this log in this process shares them (see mplog.lock).
        self._lock = FileLock(
            lock_path, options.lock_timeout, self.permissions, path, direct, process_wide=True
        )
        self._guard = ThreadGuard(
            lambda error: reporter.report(
                "a close, reopen or rollover deferred by re-entry", error
            ),
            self._lock.inside,
            self._lock.deferred,
        )
        # FileHandler sets baseFilename, mode, encoding, errors and self.stream (None).
        super().__init__(path, "a", encoding=options.encoding, delay=True, errors=options.errors)
        self._durability = Durability.create(options.fsync, reporter)
        self._file = ActiveFile(
            path,
            self._lock,
            self.permissions,
            reporter,
            self._durability,
            network=network,
            watch_interval=options.watch_interval,
            truncate=options.truncate,
            presence=None
            if is_special_file(path)
            else Presence(presence_path_for(lock_path), self.permissions, self._settings),
            keep_open=options.keep_file_open,
            local_locks=network and local_locks_only(path),
            file_start=self._file_start if options.bom or options.header else None,
        )
        self.backups = Backups(
            path,
            self.rotation_filename,
            lambda: self.backupCount,
            None if self.schedule is None else self.schedule.suffix_pattern,
            options.suffixes,
            options.retention,
        )
        self._archiver: Archiver | None = None
        if self.compressor is not None:
            self._archiver = Archiver(
                path,
                self.compressor,
                self._lock,
                self.backups.files,
                self.backups.locate,
                self.permissions,
                reporter,
                lambda message: self._debug("%s", message),
                delay=self.compress_delay,
                durable=self._durability is not None,
            )
        self._rollover = Rollover(
            self._file,
            self.backups,
            self._time_trigger(path),
            self.rotate,
            lambda: self.backupCount,
            self._archiver,
            reporter,
            lambda message: self._debug("%s", message),
        )
        self._max_bytes, self._backup_count = options.max_bytes, options.backup_count
        self._update_size_limit()
        self._batch: BatchWriter | None = None
        if options.batched:
            self._batch = BatchWriter(
                self._write_batch,
                self._report_batch_error,
                options.queue_size,
                options.drop_when_full,
            )

    def _time_trigger(self, path: str) -> TimeTrigger | None:
        if self.schedule is None:
            return None
        try:
            start = os.stat(path).st_mtime
        except OSError:
            start = time.time()
        return TimeTrigger(self.schedule, start, self._read_boundary, self._write_boundary)

    # -- stdlib-compatible surface ------------------------------------------------

    @property  # type: ignore[override]
    def stream(self) -> io.FileIO | None:
        """The active file, open for appending (bytes, unbuffered), or None."""
        return self._file.stream

    @stream.setter
    def stream(self, value: io.FileIO | None) -> None:
        # FileHandler sets None, servers that reopen their logs set what _open()
        # returned: the active file holds it, or holds a newer one already (a reopen
        # that interrupted that _open(), deferred, ran before it returned; another
        # thread noticed a rotation): setting it changes nothing, and never raises.
        if value is not None and value not in self._file.streams:
            raise ValueError(
                f"{type(self).__name__} writes through its own descriptor; to reopen "
                "the log, call close() and then _open()"
            )

    @property
    def _fd(self) -> int | None:
        return self._file.fd

    @property
    def keep_file_open(self) -> bool:
        """``False`` closes the log file after every record."""
        return self._file.keep_open

    @keep_file_open.setter
    def keep_file_open(self, value: bool) -> None:
        self._file.keep_open = value

    @property
    def watch_interval(self) -> float:
        """Seconds between two checks of the path by this process."""
        return self._file.watch_interval

    @watch_interval.setter
    def watch_interval(self, value: float) -> None:
        self._file.watch_interval = value

    @property
    def rolloverAt(self) -> float:
        """The next time-rotation instant this process knows of (stdlib name)."""
        trigger = self._rollover.trigger
        return trigger.rollover_at if trigger is not None else 0.0

    @rolloverAt.setter
    def rolloverAt(self, value: float) -> None:
        trigger = self._rollover.trigger
        if trigger is not None:
            trigger.rollover_at = value
            self._file.fast_until = 0.0

    @property
    def suffix(self) -> str | None:
        """The ``strftime`` format of time-named backups' suffix (stdlib name); None
        without *when*."""
        return None if self.schedule is None else self.schedule.suffix

    @suffix.setter
    def suffix(self, value: str | None) -> None:
        if value != self.suffix:
            raise ValueError(_fixed_naming("suffix", value, self.suffix))

    @property
    def extMatch(self) -> re.Pattern[str] | None:
        """The pattern that finds the suffix in backup names (stdlib name)."""
        return None if self.schedule is None else self.schedule.suffix_pattern

    @extMatch.setter
    def extMatch(self, value: re.Pattern[str] | None) -> None:
        if value != self.extMatch:
            raise ValueError(_fixed_naming("extMatch", value, self.extMatch))

    @property
    def maxBytes(self) -> int:
        """Rotate before a record would make the file larger than this; 0: never by size."""
        return self._max_bytes

    @maxBytes.setter
    def maxBytes(self, value: SizeLike) -> None:
        self._max_bytes = parse_size(value, "maxBytes")
        self._update_size_limit()

    @property
    def backupCount(self) -> int:
        """How many rotated files to keep."""
        return self._backup_count

    @backupCount.setter
    def backupCount(self, value: int) -> None:
        self._backup_count = parse_backup_count(value)
        self._update_size_limit()

    def _update_size_limit(self) -> None:
        # As in the stdlib, size rotation without a backup to rotate into is off,
        # unless time naming is on (time-named backups are kept by default).
        has_room = self._backup_count > 0 or self.schedule is not None
        limit = self._rollover.size_limit = self._max_bytes if has_room else 0
        self._file.fast_limit = limit or 1 << 63

    @entry_point
    def _open(self) -> io.FileIO | None:  # type: ignore[override]
        """Open the log file for appending (bytes, unbuffered) and return it.

        Called by the stdlib's machinery and, after :meth:`close`, by servers that
        reopen their logs (gunicorn's ``reopen_files``): the handler is then what it
        was before, batched mode included.  Called from a signal handler that
        interrupted this handler, it returns the current stream and reopens once
        the interrupted call is done (see :mod:`mplog.lifecycle`).
        """
        if not self._guard.enter():
            self._guard.defer(self._reopen)
            return self.stream
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

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Return True if writing *record* now would trigger a rotation.

        Advisory (stdlib-compatible); :meth:`emit` decides again under the lock.
        """
        try:
            st = os.stat(self.baseFilename)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):  # bpo-45401: never roll over a device or pipe
            return False
        if self.rolloverAt and time.time() >= self.rolloverAt and st.st_size:
            return True
        if not self.maxBytes or not st.st_size:  # gh-116263: never roll over an empty file
            return False
        # Like the stdlib, report a full file even when backupCount=0 makes the
        # rollover a no-op (emit then keeps appending, see _update_size_limit).
        return st.st_size + len(self._encode(record)) > self.maxBytes

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
                self._file.sync(shared, time.time(), check=True)
                if not self._file.regular:  # bpo-45401: renaming /dev/null breaks hosts
                    return
                self._rollover.rotate(shared, time_due=False)
        except BaseException as error:
            self._let_go(error)
            if not isinstance(error, Exception):
                raise
            # As for a rotation due by size or time: reported, never raised.
            self._reporter.report(f"rotating {self.baseFilename} failed", error)
        finally:
            self._guard.leave()

    def getFilesToDelete(self) -> list[str]:
        """Return the backups that retention deletes at the next rotation, oldest first:
        time-named ones beyond *backupCount*, and any beyond *max_age* or
        *max_total_size* (compressed forms included)."""
        return [path for backup in self.backups.expired() for path in backup.paths]

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
            # Waiting for mplog's threads: not holding logging's locks (see mplog.batch).
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
                with released(self.lock):  # logging.shutdown() holds it (see mplog.batch)
                    self._batch.flush()
            except BaseException as error:
                self._let_go(error)
                raise
            finally:
                self._guard.leave()

    def handleError(self, record: logging.LogRecord) -> None:
        """Report a failure: mplog's own reports (a rotation that cannot happen, a
        repaired lock file, failing retention or compression...) as one line on
        standard error, with the traceback only when *debug* is on; a record that
        could not be written as :meth:`logging.Handler.handleError` does.  Both only
        while ``logging.raiseExceptions`` is true (see :mod:`mplog.reporting`)."""
        if not print_report(record, self.debug):
            super().handleError(record)

    @property
    def dropped(self) -> int:
        """Records dropped because the batched queue was full (``overflow="drop"``)."""
        return self._batch.dropped if self._batch is not None else 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the configuration, not the state (descriptors, locks, threads, queue).

        The unpickled handler (in a spawn child, a process pool task) is an equivalent
        one on the same log: the same arguments, level, formatter, filters, name,
        ``namer``, ``rotator``, size and backup settings, taking the same inter-process
        lock, and opening the log at its first record.  It never truncates the log
        (``mode="w"`` is this process's, done once).  Attributes of a subclass are not
        carried: override ``__reduce__`` to add them.
        """
        config = {**self._config, "mode": "a", "delay": True}
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
        holds the log's lock through another handler of the same file.
        """
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
        threads = self._guard.threads
        ident = _get_ident()
        if ident in threads:  # a signal handler or a __del__ interrupted this handler
            self._emit_reentrant(record)
            return
        threads[ident] = True  # inside, until the finally below (see mplog.lifecycle)
        try:
            formatter = self.formatter
            if self._plain_text and formatter is not None:  # _encode, without the calls
                data = (formatter.format(record) + self.terminator).encode(
                    self._codec, self._codec_errors
                )
            else:
                data = self._encode(record)
            batch = self._batch
            if batch is not None and not batch.stopped and not sys.is_finalizing():
                self._enqueue(data)
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
            if self._guard.deferred:
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

    def _settings(self) -> str:
        """The rotation settings every process on the log should share, as one line
        (recorded in the presence file, see :mod:`mplog.presence`)."""
        schedule = self.schedule
        when = "None" if schedule is None else f"{schedule.when} interval={schedule.interval}s"
        return f"maxBytes={self.maxBytes} backupCount={self.backupCount} when={when}"

    def _file_start(self) -> bytes:
        """What a new file starts with, before its first record: the encoding's
        byte-order mark and the ``header`` line, if any (see ActiveFile.write)."""
        options = self.options
        if options.header is None:
            return options.bom
        text = options.header() + self.terminator
        if self._newline != "\n":
            text = text.replace("\n", self._newline)
        return options.bom + text.encode(self._codec, self._codec_errors)

    def _encode(self, record: logging.LogRecord) -> bytes:
        text = self.format(record) + self.terminator
        if self._newline != "\n":
            text = text.replace("\n", self._newline)
        return text.encode(self._codec, self._codec_errors)

    def _enqueue(self, data: bytes, block: bool = True) -> None:
        batch = self._batch
        assert batch is not None
        queued = batch.put(data, block)
        if queued:
            if batch.dropped:  # only a drop starts a "queue full" episode
                self._reporter.recovered("queue full")
        elif queued is None:  # closed meanwhile: after everything it queued, in order
            self._file.append(data)
        elif self._reporter.first("queue full"):  # the first drop of an episode only
            raise QueueFull(
                f"mplog batched queue for {self.baseFilename} is full "
                f"(queue_size={batch.max_records}): dropping records "
                f"({batch.dropped} so far; see handler.dropped)"
            )

    @entry_point
    def _write_batch(self, batch: list[bytes]) -> None:
        """Write queued records under one lock acquisition, rotating between them as due
        (in the writer thread, marked inside the handler like any entry point)."""
        entered = self._guard.enter()
        try:
            with self._lock as shared:
                self._rollover.write_batch(shared, batch)
            self._file.written()  # synced per batch (see ActiveFile.written)
            if self._reporter.episode is not None:
                self._reporter.write_succeeded()
        except BaseException as error:
            if entered:
                self._let_go(error)
            raise
        finally:
            if entered:
                self._guard.leave()

    def _let_go(self, error: BaseException) -> None:
        """An exception leaves an entry point that entered the handler: release what
        this thread may still hold, unless the exception says an outer caller holds it.

        The last layer of cleanup (see mplog.lock): an exception that arrived where a
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

    def _report_batch_error(self, error: BaseException, count: int) -> None:
        """Called by the writer thread inside its ``except``: once per failure episode."""
        if not self._reporter.lost(error, count):
            self.handleError(
                mplog_record(
                    "%d queued records could not be written to %s: %s",
                    count,
                    self.baseFilename,
                    error,
                )
            )

    # -- reports, shared state, fork -------------------------------------------------

    def _report_chown(self, path: str, error: OSError) -> None:
        if self._reporter.first("chown"):
            self.handleError(
                mplog_record(
                    "cannot give %s to owner %s (uid, gid): %s; the files mplog creates keep "
                    "this process's owner (reported once)",
                    path,
                    self.permissions.owner,
                    error,
                )
            )

    def _read_boundary(self) -> float | None:
        return self._lock.shared.boundary

    def _write_boundary(self, value: float) -> None:
        self._lock.shared.boundary = value

    def _before_fork(self) -> None:
        """Write out the batched queue, so the child starts empty and nothing queued
        before the fork is written twice (not from inside this handler: see flush)."""
        self.flush()

    def _after_fork(self) -> None:
        """In a forked child: take our own lock descriptor (see lock.py), start empty."""
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

    def _debug(self, message: str, *args: object) -> None:
        if self.debug:
            print(f"mplog[{os.getpid()}]: " + message % args, file=sys.stderr)


def _fixed_naming(name: str, value: object, current: object) -> str:
    return (
        f"{name}={value!r}: mplog derives backup names from when= ({current!r} here), "
        "the same in every process, so that each one finds the others' backups; "
        "to name backups differently, set namer= (it gets the default name and "
        "returns yours)"
    )


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
        assert self.schedule is not None
        return self.schedule.next_rollover(currentTime)
