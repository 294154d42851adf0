"""The multi-process safe rotating file handlers.

Per record, :meth:`ConcurrentRotatingFileHandler.emit` formats and encodes once,
then, holding the inter-process lock: stats the path (reopening if another
process or logrotate moved the file), decides from cheap local state whether to
rotate, and appends the bytes with one ``os.write`` on an ``O_APPEND``
descriptor.  The record is in the kernel when ``emit`` returns.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime
import io
import logging
import logging.handlers
import os
import secrets
import stat
import struct
import sys
import threading
import time
from typing import Any, Union

from .archive import Archiver, discard, is_claimed
from .archive import after_fork_in_child as archive_after_fork
from .batch import BatchWriter
from .compression import BUILTIN_SUFFIXES, CompressLike, Compressor
from .durability import Durability, FsyncLike
from .exceptions import MplogError, QueueFull, ReentrantLogging
from .header import MAGIC, SIZE_AT, WRITE_END_AT, pack_word, unpack_state
from .lifecycle import ThreadGuard, track
from .lock import FileLock, SharedState, lock_path_for
from .netfs import is_network_filesystem, is_nfs, local_locks_only
from .permissions import FilePermissions, Owner, explained_open_errors
from .placeholders import expand_placeholders
from .retention import Retention
from .rotation import Backups
from .triggers import TimeSchedule, TimeTrigger
from .units import DurationLike, SizeLike, parse_duration, parse_size

__all__ = ["ConcurrentRotatingFileHandler", "ConcurrentTimedRotatingFileHandler"]

PathLike = Union[str, "os.PathLike[str]"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_DSYNC = getattr(os, "O_DSYNC", 0) or getattr(os, "O_SYNC", 0)
#: Seconds between attempts to rotate after a rotation failed (the file keeps growing).
ROTATION_RETRY = 10.0

_get_ident = threading.get_ident
_pread, _pwrite, _fstat, _lseek, SEEK_CUR = os.pread, os.pwrite, os.fstat, os.lseek, os.SEEK_CUR


class ConcurrentRotatingFileHandler(logging.handlers.BaseRotatingHandler):
    """Append records to *filename* from any number of processes, rotating it by size and/or time.

    Positional arguments are those of :class:`logging.handlers.RotatingFileHandler`;
    the time arguments of :class:`logging.handlers.TimedRotatingFileHandler` and the
    keyword arguments of ``concurrent_log_handler.ConcurrentRotatingFileHandler``
    are accepted as keywords, with the same meaning.

    :param filename: the log file (``str`` or path-like); a missing directory is created.
        ``{hostname}`` in it is replaced by :func:`socket.gethostname` (see
        :mod:`mplog.placeholders`); other braces are kept as written.
    :param mode: ``"a"`` (default) or ``"w"`` (truncate once, when this handler
        first opens the file; rarely what several processes want).
    :param maxBytes: rotate before a record would make the file larger than this
        many bytes; ``0`` disables size rotation.  Accepts ``"10 MB"``, ``"512KiB"``.
        A single record larger than *maxBytes* is written whole into a fresh file.
    :param backupCount: how many rotated files to keep; ``0`` keeps all time-named
        backups, and (as in the stdlib) disables size rotation when there is no
        *when*.
    :param encoding: text encoding of the file (default UTF-8, the same in every process).
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
        both libraries exclude each other during a migration.
    :param lock_timeout: seconds to wait for the lock before the record goes to
        :meth:`handleError` (``None``: wait for ever).
    :param chmod: exact permission bits of every file mplog creates.
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
        background sync at most that long after a write (group commit), at
        each rotation and at :meth:`close`.  Rotations and compression then
        sync the directory after renaming.  See :mod:`mplog.durability`.

    .. versionadded:: 0.1
    """

    stream: io.FileIO | None  # type: ignore[assignment]  # bytes, unbuffered: see _open

    def __init__(  # noqa: PLR0915 - wires the stdlib's and concurrent-log-handler's options
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
        lock_timeout: float | None = None,
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
    ) -> None:
        if not isinstance(mode, str) or mode.replace("b", "").replace("+", "") not in ("a", "w"):
            raise ValueError(f"mode={mode!r}: expected 'a' (append) or 'w' (truncate)")
        self._max_bytes = self._backup_count = 0
        self.schedule = None if when is None else TimeSchedule.parse(when, interval, utc, atTime)
        self.maxBytes = maxBytes  # the setter parses "10 MB"
        self.backupCount = backupCount
        self.compressor = Compressor.parse(compress, use_gzip)
        self.compress_delay = parse_duration(compress_delay, "compress_delay")
        retention = Retention.parse(0, max_age, max_total_size)
        if retention.by_age_or_size and not self._size_limit and self.schedule is None:
            raise ValueError(
                f"max_age={max_age!r}, max_total_size={max_total_size!r}: size-only rotation "
                "keeps numbered backups, which needs maxBytes and backupCount > 0 (or give when=)"
            )
        self._codec, self._codec_errors, self._newline = _text_options(
            encoding, errors, unicode_error_policy, newline, terminator
        )
        # Nothing to translate, and format() is Handler's: emit formats and encodes inline.
        self._plain_text = self._newline == "\n" and type(self).format is logging.Handler.format
        self.permissions = FilePermissions.parse(chmod, umask, owner)
        self.permissions.report = self._report_chown
        self._chown_reported = False
        self.terminator = terminator
        self.keep_file_open = keep_file_open
        self.debug = debug
        self._dropping = False
        self._episode: tuple[type, int | None] | None = None  # the failure being suppressed
        self._episode_lost = 0
        self._batch = BatchWriter.create(
            self._write_batch, self._report_batch_error, queue_size, overflow, batched
        )
        self.watch_interval = _watch_interval(watch_interval)
        self._durability = Durability.parse(fsync, self._report)
        self._fd: int | None = None
        self._file_id: tuple[int, int] = (-1, -1)
        self._generation = -1  # the shared generation of the file we hold
        # When we last stat'ed the path; the next time; until when emit may skip
        # _prepare (see _arm_fast_path).
        self._watched_at = self._next_watch = self._fast_until = 0.0
        self._regular = True
        self._truncate_on_open = mode.startswith("w")
        self._retention_failing = False
        self._guard = ThreadGuard(
            lambda error: self._report("a close, reopen or rollover deferred by re-entry", error)
        )
        # Rotation failures (an unwritable directory): when to try again, and how many
        # rotations were skipped in the current episode (None: not failing).
        self._retry_rotation_at = 0.0
        self._rotations_skipped: int | None = None

        # FileHandler sets baseFilename, mode, encoding, errors and, unless
        # delay, calls our _open(); everything _open needs is set above.
        filename = expand_placeholders(os.fspath(filename))
        log_path = os.path.abspath(filename)
        if network_fs is not None and not isinstance(network_fs, bool):
            raise ValueError(f"network_fs={network_fs!r}: expected True, False or None (detect)")
        self._network = is_network_filesystem(log_path) if network_fs is None else network_fs
        # A network filesystem whose locks only this host sees cannot keep hosts apart:
        # said once, at the first open (see _open_file).
        self._local_locks_unreported = self._network and local_locks_only(log_path)
        lock_path = lock_path_for(log_path, lock_file_directory)
        # On NFS the shared state bypasses the client's cache (and any delegation).
        direct = self._network and is_nfs(lock_path)
        self._lock = FileLock(lock_path, lock_timeout, self.permissions, log_path, direct)
        super().__init__(filename, "a", encoding=self._codec, delay=True, errors=self._codec_errors)
        self.backups = Backups(
            self.baseFilename,
            self.rotation_filename,
            lambda: self.backupCount,
            None if self.schedule is None else self.schedule.suffix_pattern,
            _suffixes(self.compressor),
            retention,
        )
        self._archiver: Archiver | None = None
        if self.compressor is not None:
            self._archiver = Archiver(
                self.baseFilename,
                self.compressor,
                self._lock,
                self.backups.files,
                self.backups.locate,
                self.permissions,
                self._report,
                lambda message: self._debug("%s", message),
                delay=self.compress_delay,
                durable=self._durability is not None,
            )
        self.mode = mode
        self.delay = delay
        self._time: TimeTrigger | None = None
        if self.schedule is not None:
            try:
                start = os.stat(self.baseFilename).st_mtime
            except OSError:
                start = time.time()
            self._time = TimeTrigger(
                self.schedule, start, self._read_boundary, self._write_boundary
            )
        if not delay:  # errors name the log and the fix, not only the hidden lock file
            with explained_open_errors(self.baseFilename, lock_path), self._lock:
                self._open_file()
        track(self)

    # -- stdlib-compatible surface ------------------------------------------------

    @property
    def rolloverAt(self) -> float:
        """The next time-rotation instant this process knows of (stdlib name)."""
        return self._time.rollover_at if self._time is not None else 0.0

    @rolloverAt.setter
    def rolloverAt(self, value: float) -> None:
        if self._time is not None:
            self._time.rollover_at = value
            self._fast_until = 0.0

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
                self._close_stream()
                return self._open_file()
        finally:
            self._guard.leave()

    def _reopen(self) -> None:
        self.stream = self._open()

    def _open_file(self) -> io.FileIO:
        """Open the log file for appending (bytes, unbuffered); make it the stream.

        On a network filesystem without ``O_APPEND``: records go at the published
        offset (see :mod:`mplog.netfs`)."""
        # On a network filesystem: no O_APPEND (records go at the published offset), and
        # O_DSYNC: each write reaches the server before the lock is released, and the
        # NFS client sends exactly the bytes written, never a whole cached page whose
        # rest this host wrongly believes empty (another host's records: NUL bytes).
        flags = (_OPEN_FLAGS & ~os.O_APPEND) | _DSYNC if self._network else _OPEN_FLAGS
        if self._truncate_on_open:
            flags |= os.O_TRUNC
            self._truncate_on_open = False
        fd = self.permissions.open(self.baseFilename, flags)
        try:
            st = os.fstat(fd)
            stream = io.FileIO(fd, "ab", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._file_id = self._identity(st)
        self.stream = stream
        if self._local_locks_unreported:
            self._local_locks_unreported = False
            self._notify(
                f"{self.baseFilename} is on a network filesystem mounted with local locks "
                "(local_lock= or nolock): the lock does not exclude other hosts, so "
                "processes on several hosts can overwrite each other's records; mount it "
                "with local_lock=none, or give each host its own log"
            )
        if self._durability is not None and stat.S_ISREG(st.st_mode):
            self._durability.opened(os.path.dirname(self.baseFilename), self._file_id)
        return stream

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
        if self._time is not None and time.time() >= self._time.rollover_at and st.st_size:
            return True
        if not self.maxBytes or not st.st_size:  # gh-116263: never roll over an empty file
            return False
        # Like the stdlib, report a full file even when backupCount=0 makes the
        # rollover a no-op (emit then keeps appending, see _update_size_limit).
        return st.st_size + len(self._encode(record)) > self.maxBytes

    def doRollover(self) -> None:
        """Rotate the file now, holding the inter-process lock (never a device or pipe).

        Like every record, it first cuts off a record torn by a writer that died.
        """
        if not self._guard.enter():  # from a signal handler that interrupted this handler
            self._guard.defer(self.doRollover)
            return
        try:
            if self._batch is not None:
                self._batch.flush()
            with self._lock as shared:
                self._sync(shared, time.time(), check=True)
                if not self._regular:  # bpo-45401: renaming /dev/null breaks hosts
                    return
                self._rotate(shared, time_due=False)
        finally:
            self._guard.leave()

    def getFilesToDelete(self) -> list[str]:
        """Return the backups that retention deletes at the next rotation, oldest first:
        time-named ones beyond *backupCount*, and any beyond *max_age* or
        *max_total_size* (compressed forms included)."""
        return [path for backup in self.backups.expired() for path in backup.paths]

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
            if self._batch is not None:
                self._batch.close()
            if self._durability is not None:
                self._durability.close()
            if self._archiver is not None:
                self._archiver.close()
            with self.lock:  # type: ignore[union-attr]
                self._close_stream()
                # Stay registered for the fork hook: gunicorn's reopen_files() reopens a
                # closed handler (close(); _open()), and a worker forked after that must
                # still get its own lock descriptor.
                self._lock.close()
                logging.Handler.close(self)
        finally:
            self._guard.leave()

    def flush(self) -> None:
        """In batched mode, return once every queued record is in the file.

        In sync mode there is nothing to do: records reach the kernel before
        :meth:`emit` returns.  Called from inside this handler (a signal handler
        that interrupted it), it returns at once.
        """
        if self._batch is not None and self._guard.enter():
            try:
                self._batch.flush()
            finally:
                self._guard.leave()

    @property
    def dropped(self) -> int:
        """Records dropped because the batched queue was full (``overflow="drop"``)."""
        return self._batch.dropped if self._batch is not None else 0

    # -- the write path -------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter *record*, then emit it holding the handler's thread lock.

        What :meth:`logging.Handler.handle` does on Python 3.13 (a filter may
        return a replacement record, as since 3.12), with the lock taken by a
        ``with`` statement instead of two more Python calls per record.
        """
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            with self.lock:  # type: ignore[union-attr]
                self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:  # noqa: PLR0912, PLR0915 - the hot path, inlined
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
                return
            lock = self._lock
            shared = lock.acquire()
            try:
                # The fast path: what _prepare and _write do when nothing is due (no
                # watch, no rotation, no other writer's rotation or crash to handle),
                # inlined on the header's words (mplog.header). Per record, Python
                # calls cost as much as the system calls.
                n = len(data)
                lock_fd = shared.fd
                fast = False
                if self._watched_at <= time.time() < self._fast_until:
                    try:
                        magic, generation, size, end = unpack_state(_pread(lock_fd, 32, 0))
                    except struct.error:  # the lock file was truncated: _prepare repairs it
                        magic = b""
                    fast = (
                        magic == MAGIC
                        and generation == self._generation
                        and size == end  # no write in flight
                        and size + n <= self._fast_limit
                    )
                if fast:
                    end = size + n
                    word = pack_word(end)
                    _pwrite(lock_fd, word, WRITE_END_AT)  # SharedState.begin_write
                    try:
                        written = os.write(self._fd, data)  # type: ignore[arg-type]
                    except OSError:
                        self._cut_partial(shared, 0)
                        raise
                    if written != n:
                        self._write_rest(shared, data, written)
                    _pwrite(lock_fd, word + word, SIZE_AT)  # SharedState.end_write
                    if _lseek(self._fd, 0, SEEK_CUR) != end:  # type: ignore[arg-type]  # see _write
                        shared.saw_foreign(time.time())
                else:
                    self._write(shared, data, self._prepare(shared, n))
            finally:
                lock.release()
            if self._durability is not None and self._regular:
                # After the unlock, so other writers append while this one waits for
                # the disk, yet before returning: the record is in the page cache of
                # the file open on our descriptor, and syncing it flushes every dirty
                # page of that file, whoever wrote it. Renamed by a rotation meanwhile,
                # it is still that file (the rotator synced its name); nobody cuts a
                # complete record off.
                self._durability.written(self._fd, self._file_id)  # type: ignore[arg-type]
            if not self.keep_file_open:
                self._close_stream()
            if self._episode is not None:
                self._end_episode()
        except RecursionError:  # as the stdlib does: see bpo-36272
            raise
        except Exception as error:
            if not self._in_episode(error, 1):
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
        """
        try:
            batch = self._batch
            if batch is None or batch.stopped:
                raise ReentrantLogging(self._lock.path)
            self._enqueue(self._encode(record), block=False)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _in_episode(self, error: BaseException, count: int) -> bool:
        """True if *error* repeats the failure already reported (disk full, lock
        timeout...): such failures are reported once per episode, not per record."""
        if not isinstance(error, OSError):  # bad records are reported one by one
            return False
        key = (type(error), error.errno)
        if key == self._episode:
            self._episode_lost += count
            return True
        self._episode, self._episode_lost = key, 0
        return False

    def _end_episode(self) -> None:
        """A write succeeded again: report how many records the episode cost."""
        lost, self._episode, self._episode_lost = self._episode_lost, None, 0
        if lost:
            try:
                raise MplogError(
                    f"logging to {self.baseFilename} recovered; {lost} more records could "
                    "not be written after the error reported before"
                )
            except MplogError:
                self.handleError(_mplog_record("%s", "recovered from a write failure"))

    def _enqueue(self, data: bytes, block: bool = True) -> None:
        assert self._batch is not None
        if self._batch.put(data, block):
            self._dropping = False
        elif not self._dropping:  # report the first drop of an episode, not every one
            self._dropping = True
            raise QueueFull(
                f"mplog batched queue for {self.baseFilename} is full "
                f"(queue_size={self._batch.max_records}): dropping records "
                f"({self._batch.dropped} so far; see handler.dropped)"
            )

    def _write_batch(self, batch: list[bytes]) -> None:
        """Write queued records under one lock acquisition, rotating between them as due
        (in the writer thread, marked inside the handler like any entry point)."""
        entered = self._guard.enter()
        try:
            self._write_queued(batch)
        finally:
            if entered:
                self._guard.leave()

    def _write_queued(self, batch: list[bytes]) -> None:
        with self._lock as shared:
            size = self._prepare(shared, len(batch[0]))
            if size < 0 or not self._size_limit:
                self._write(shared, b"".join(batch), size)
            else:
                start = 0
                end_size = size
                for i, data in enumerate(batch):
                    if i > start and end_size + len(data) > self._size_limit:
                        self._write(shared, b"".join(batch[start:i]), size)
                        size = end_size = self._rotate(shared, time_due=False)
                        start = i
                    end_size += len(data)
                self._write(shared, b"".join(batch[start:]), size)
        if self._durability is not None and self._regular:  # per batch (see emit)
            self._durability.written(self._fd, self._file_id)  # type: ignore[arg-type]
        if not self.keep_file_open:
            self._close_stream()
        if self._episode is not None:
            self._end_episode()

    def _report_batch_error(self, error: BaseException, count: int) -> None:
        """Called by the writer thread inside its ``except``: once per failure episode."""
        if not self._in_episode(error, count):
            self.handleError(
                _mplog_record(
                    "%d queued records could not be written to %s: %s",
                    count,
                    self.baseFilename,
                    error,
                )
            )

    def _encode(self, record: logging.LogRecord) -> bytes:
        text = self.format(record) + self.terminator
        if self._newline != "\n":
            text = text.replace("\n", self._newline)
        return text.encode(self._codec, self._codec_errors)

    def _prepare(self, shared: SharedState, nbytes: int) -> int:
        """Make sure we append to the active file, rotate if due; return its size (lock held).

        Another process's rotation bumps the shared generation, so the common case
        needs no system call; the path itself is stat'ed every *watch_interval*
        seconds, and before any rotation, to notice other programs (logrotate).
        """
        now = time.time()
        size, checked = self._sync(shared, now)
        if not self._regular:  # bpo-45401: a device or pipe is never rotated
            return -1
        trigger = self._time
        time_due = trigger is not None and trigger.needs_check(now) and trigger.due(now, not size)
        limit = self._size_limit
        size_due = limit and size > 0 and size + nbytes > limit
        if (time_due or size_due) and now < self._retry_rotation_at:  # rotating fails: later
            time_due = size_due = False
        if (time_due or size_due) and not checked:
            # confirm: another program may have moved or truncated the file, or the lock file
            size = self._check_file(shared, now)
            size_due = limit and size > 0 and size + nbytes > limit
        if time_due or size_due:
            size = self._rotate(shared, time_due)
        self._arm_fast_path()
        return size

    def _sync(self, shared: SharedState, now: float, check: bool = False) -> tuple[int, bool]:
        """Cut off a record a writer left torn when it died; check the path (and the lock
        file) if asked, if another process changed the active file, or if the watch
        is due.  Return the active file's size and whether it was checked (lock held)."""
        generation, size, in_flight = shared.load()
        if in_flight:  # the last writer died in the middle of a record
            size = self._recover(shared)
        check = (
            check
            or generation != self._generation  # -1 while we hold no file
            # the watch is due, or the clock went back by more than the interval
            or not self._watched_at <= now < self._next_watch
            or not _fstat(shared.fd).st_nlink  # the lock file was deleted
        )
        if check:
            size = self._check_file(shared, now)
        return size, check

    def _arm_fast_path(self) -> None:
        """Let emit skip :meth:`_prepare` until the next watch or time-rotation
        check is due (lock held, the file checked; emit still compares the
        generation, the size and the in-flight mark at every record)."""
        until = self._next_watch
        if self._time is not None:  # synced with the others by _prepare already
            until = min(until, self._time.rollover_at)
        self._fast_until = 0.0 if self._network else until  # the fast path appends

    def _refresh_directory(self) -> None:
        """Network filesystem: make this host's view of the log's directory current.

        Another host's renames may not show here for a while (cached directory
        attributes), so a listing could miss a backup and a rename overwrite it.
        Creating and removing a file of our own makes the server's reply tell this
        client whether the directory changed since it last looked, and the client
        then drops what it cached (the name is one a compression sweep removes if a
        crash leaves it behind)."""
        folder, name = os.path.split(self.baseFilename)
        probe = os.path.join(folder, f".{name}.mplog-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)

    def _identity(self, st: os.stat_result) -> tuple[int, int]:
        """What identifies a file for every process: (device, inode) on a local
        filesystem; on a network one the inode alone (device numbers differ from
        mount to mount, the server's file id does not)."""
        return (0 if self._network else st.st_dev, st.st_ino)

    def _check_file(self, shared: SharedState, now: float) -> int:
        """Check the lock file; stat the path; reopen if the file we hold was renamed,
        deleted or replaced; publish the real size (lock held)."""
        problem = self._lock.verify()
        if problem is not None:
            self._notify(problem)
        if self._lock.foreign:  # made by concurrent-log-handler: a mixed fleet
            self._lock.foreign = False
            shared.saw_foreign(now)
        if self._network:
            return self._check_shared_file(shared, now)
        try:
            st = os.stat(self.baseFilename)
        except FileNotFoundError:
            st = None
        if self._fd is None or st is None or (st.st_dev, st.st_ino) != self._file_id:
            self._close_stream()
            self._open_file()
            st = os.fstat(self._fd)  # type: ignore[arg-type]
        regular = stat.S_ISREG(st.st_mode)
        if shared.file_id() != self._file_id:
            # Not the file the others were told about (another program moved it, or
            # a rotation died half-way): announce it, so they reopen at once.
            shared.new_file(st.st_size, self._file_id)
        elif regular and st.st_size > shared.load()[1]:
            # Grown behind the shared size: a writer that does not update the header
            # (concurrent-log-handler during a migration, or another program).
            shared.saw_foreign(now)
        mixed = shared.foreign_until > now  # then check before every record
        self._generation = shared.load()[0]
        self._watched_at, self._next_watch = now, now + (0.0 if mixed else self.watch_interval)
        self._regular = regular
        if regular:
            shared.end_write(st.st_size)
        return st.st_size

    def _check_shared_file(self, shared: SharedState, now: float) -> int:
        """:meth:`_check_file` on a network filesystem, where this host's view of the log
        may be stale: a name may still lead to the file another host renamed, and a
        cached size may be old.  The file the shared state announces is the truth: it
        is (re)opened until the name leads to it, rereading the directory if needed;
        only a file nobody announced (a new log, another program's) is announced."""
        try:
            current = self._identity(os.stat(self.baseFilename))
        except FileNotFoundError:
            current = None
        announced = shared.file_id()
        if self._fd is None or current != self._file_id or announced != self._file_id:
            self._close_stream()
            self._open_file()
            if announced not in (self._file_id, (0, 0)):  # perhaps a stale name
                with contextlib.suppress(OSError):  # best effort: a read-only directory
                    self._refresh_directory()
                self._close_stream()
                self._open_file()
        st = os.fstat(self._fd)  # type: ignore[arg-type]
        self._regular = stat.S_ISREG(st.st_mode)
        size = shared.load()[1]
        if announced != self._file_id:  # a new file, or another program's: announce it
            shared.new_file(st.st_size, self._file_id)
            size = st.st_size
        self._generation = shared.load()[0]
        self._watched_at, self._next_watch = now, now + self.watch_interval
        return size if self._regular else st.st_size

    def _write(self, shared: SharedState, data: bytes, size: int) -> None:
        """Append *data* whole at *size* (-1: not a regular file) and publish the
        new size; on failure, cut off the partial record (lock held)."""
        if size < 0:  # nothing to publish: nobody rotates or measures a device
            self._write_rest(None, data, 0)
            return
        end = size + len(data)
        shared.begin_write(end)
        if self._network:
            self._write_at(shared, data, size)
            shared.end_write(end)
            return
        self._write_rest(shared, data, 0)
        shared.end_write(end)
        if _lseek(self._fd, 0, SEEK_CUR) != end:  # type: ignore[arg-type]
            # The file grew behind the shared size: a writer that does not update it
            # (concurrent-log-handler during a migration) appended since our last check.
            shared.saw_foreign(time.time())

    def _write_rest(self, shared: SharedState | None, data: bytes, written: int) -> None:
        """Write *data* from offset *written* on: the loop of a short write (rare,
        but legal); on failure, cut off what this record wrote (lock held)."""
        try:
            while written < len(data):
                written += os.write(self._fd, memoryview(data)[written:])  # type: ignore[arg-type]
        except OSError:
            if shared is not None:
                self._cut_partial(shared, written)
            raise

    def _write_at(self, shared: SharedState, data: bytes, size: int) -> None:
        """Network filesystem: write *data* at offset *size* (the published one, not
        this host's idea of the end of file), synchronously (the file is open
        ``O_DSYNC``), so that it is on the server before the lock is released and
        the next host's write lands after it; on failure, cut the file back to
        *size* (lock held)."""
        fd = self._fd
        assert fd is not None
        written = 0
        try:
            while written < len(data):  # O_DSYNC: on the server when pwrite returns
                written += os.pwrite(fd, memoryview(data)[written:], size + written)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            shared.end_write(size)
            raise

    def _cut_partial(self, shared: SharedState, written: int) -> None:
        """A write failed after *written* bytes of its record: cut them off and
        publish the real size (we hold the lock: nobody appended since)."""
        fd = self._fd
        assert fd is not None
        real = os.fstat(fd).st_size
        if written:
            real -= written
            os.ftruncate(fd, real)
        shared.end_write(real)

    def _recover(self, shared: SharedState) -> int:
        """Cut off the partial record of a writer killed mid-write (SIGKILL can end a
        large write part-way); return the active file's size (lock held)."""
        start, end = shared.in_flight()
        try:
            st = os.stat(self.baseFilename)
        except FileNotFoundError:
            shared.end_write(0)
            return 0
        size = st.st_size
        if self._identity(st) == shared.file_id() and (self._network or start <= size < end):
            # (On a network filesystem this host's size may be stale; every complete
            # record before *start* reached the server before its writer unlocked.)
            os.truncate(self.baseFilename, start)
            size = start
        # else: the write completed (size == end), or another program changed the
        # file meanwhile: keep what is there.
        shared.end_write(size)
        return size

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
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"backupCount={value!r}: expected a whole number >= 0")
        self._backup_count = value
        self._update_size_limit()

    def _update_size_limit(self) -> None:
        # As in the stdlib, size rotation without a backup to rotate into is off,
        # unless time naming is on (time-named backups are kept by default).
        has_room = self._backup_count > 0 or getattr(self, "schedule", None) is not None
        self._size_limit = self._max_bytes if has_room else 0
        self._fast_limit = self._size_limit or 1 << 63  # the fast path's size test

    def _rotate(self, shared: SharedState, time_due: bool) -> int:
        """Rename the active file away, open a fresh one, tell the others (lock held);
        return the new file's size.

        If the rename fails (a directory we may not write, a backup name taken by a
        directory), the file we hold is still the active one: keep appending to it,
        report the episode once, and try again after :data:`ROTATION_RETRY` seconds.
        """
        now = time.time()
        try:
            if self._network:  # the names below must be the server's, not a stale view
                self._refresh_directory()
            if self._durability is not None:  # whole on disk before its new name is
                self._durability.before_rename(self._fd, self._file_id)  # type: ignore[arg-type]
            self._rename_active(now, time_due)
        except Exception as error:
            return self._rotation_failed(shared, now, error)
        if self._rotations_skipped is not None:
            skipped, self._rotations_skipped = self._rotations_skipped, None
            self._notify(
                f"rotating {self.baseFilename} works again ({skipped} rotations were skipped "
                "meanwhile, so the backup just made may be larger than maxBytes)"
            )
        self._close_stream()
        self._open_file()
        size = os.fstat(self._fd).st_size  # type: ignore[arg-type]
        self._generation = shared.new_file(size, self._file_id)
        self._prune()  # once the new file is in place: a failure here costs no record
        if self._archiver is not None:
            # After retention, so it never finds the new backup already claimed. Only
            # starts (or wakes) the background thread: never compresses in this
            # thread, which holds the writers' lock (see Archiver.request).
            self._archiver.request()
        return size

    def _rename_active(self, now: float, time_due: bool) -> None:
        """Rename the active file to its backup name (shifting numbered backups)."""
        trigger = self._time
        if trigger is not None:
            trigger.sync(now)  # name the file like every other process would
            dest = self.backups.time_name(trigger.label())
            self._debug("rotating %s -> %s", self.baseFilename, dest)
            self.rotate(self.baseFilename, dest)
            if time_due or now >= trigger.rollover_at:
                trigger.advance(now)
            else:
                trigger.share(now)
        elif self.backupCount > 0:
            dest = self.backups.shift(self.rotate, self._discard)
            self._debug("rotating %s -> %s", self.baseFilename, dest)

    def _rotation_failed(self, shared: SharedState, now: float, error: Exception) -> int:
        """Keep the file we hold (called inside the rename's ``except``); return its size."""
        self._retry_rotation_at = now + ROTATION_RETRY
        size = shared.load()[1]
        if self._rotations_skipped is None:
            self._rotations_skipped = 0
            self._report(
                f"cannot rotate {self.baseFilename} (now {size} bytes, maxBytes="
                f"{self.maxBytes}); appending to it and trying again every "
                f"{ROTATION_RETRY:g} s",
                error,
            )
        self._rotations_skipped += 1
        return size

    # -- compression and failures ------------------------------------------------------

    def _discard(self, path: str) -> None:
        """Drop a numbered backup pushed past backupCount, never under a compressor."""
        self._debug("deleting %s", path)
        discard(path, self.baseFilename)

    def _prune(self) -> None:
        """Apply retention, sparing files being compressed (writers' lock held).

        A failure is reported, once until retention succeeds again, and never
        fails the write that triggered the rotation."""
        try:
            for path in self.backups.prune(is_claimed):
                self._debug("deleted %s", path)
        except Exception as error:
            if not self._retention_failing:
                self._retention_failing = True
                self._report(f"applying retention to the backups of {self.baseFilename}", error)
        else:
            self._retention_failing = False

    def _report(self, message: str, error: BaseException) -> None:
        """Report a background failure (called inside an ``except``)."""
        self.handleError(_mplog_record("%s: %s", message, error))

    def _notify(self, message: str) -> None:
        """Report something mplog found and mended, through :meth:`handleError`."""
        try:
            raise MplogError(message)
        except MplogError as error:
            self._report("mplog", error)

    def _report_chown(self, path: str, error: OSError) -> None:
        if not self._chown_reported:
            self._chown_reported = True
            self.handleError(
                _mplog_record(
                    "cannot give %s to owner %s (uid, gid): %s; the files mplog creates keep "
                    "this process's owner (reported once)",
                    path,
                    self.permissions.owner,
                    error,
                )
            )

    def _close_stream(self) -> None:
        stream, self.stream, self._fd = self.stream, None, None
        # Whoever opens next checks the path first; no shared generation is -1, so this
        # also keeps emit off its fast path.
        self._generation = -1
        if stream is not None:
            stream.close()

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


def _text_options(
    encoding: str | None,
    errors: str | None,
    unicode_error_policy: str | None,
    newline: str | None,
    terminator: str,
) -> tuple[str, str, str]:
    """Validate the text options now, not at the first record; return
    (encoding, errors, newline to write)."""
    encoding = encoding or "utf-8"
    codecs.lookup(encoding)
    if errors and unicode_error_policy and errors != unicode_error_policy:
        raise ValueError(
            f"errors={errors!r} and unicode_error_policy={unicode_error_policy!r} disagree; "
            "give only one"
        )
    errors = errors or unicode_error_policy or "strict"
    codecs.lookup_error(errors)
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"newline={newline!r}: expected None, '', '\\n', '\\r' or '\\r\\n'")
    if not isinstance(terminator, str):
        raise TypeError(f"terminator={terminator!r}: expected a str")
    return encoding, errors, os.linesep if newline is None else (newline or "\n")


def _suffixes(compressor: Compressor | None) -> tuple[str, ...]:
    """The suffixes of compressed backups to recognize: every built-in compressor's
    (the option may have changed since they were made) and a custom one's."""
    if compressor is None or compressor.suffix in ("", *BUILTIN_SUFFIXES):
        return BUILTIN_SUFFIXES
    return (*BUILTIN_SUFFIXES, compressor.suffix)


def _watch_interval(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"watch_interval={value!r}: expected seconds >= 0")
    return float(value)


def _mplog_record(msg: str, *args: object) -> logging.LogRecord:
    """A record describing mplog's own trouble, for :meth:`Handler.handleError`."""
    return logging.makeLogRecord(
        {"name": "mplog", "levelno": logging.ERROR, "levelname": "ERROR", "msg": msg, "args": args}
    )
