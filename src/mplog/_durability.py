"""Durability: the ``fsync=`` option.

Without it a record is in the kernel when ``emit`` returns (every process and
reader sees it; a crash of the *machine* can lose what the kernel had not yet
written back).  With it, records reach stable storage:

- ``fsync=True`` (:class:`SyncEach`): every record, before the logging call
  returns (in batched mode: every batch, before :meth:`flush` returns).
- ``fsync=<seconds>`` (:class:`GroupCommit`): a per-handler background thread
  syncs the files this process wrote at most that many seconds after the first
  write it has not synced yet; a rotation syncs the file before renaming it,
  and ``close()`` (and interpreter exit) syncs what is left.  From the end of the
  process on (threading's exit hook, before the non-daemon threads are joined;
  a multiprocessing child then leaves with ``os._exit``), each write is synced
  before the call returns: no thread would sync it later.

Both make names durable too: the log's directory is synced after a file is
created or renamed into place (at the first open of each file, which follows
every rotation), and the compressor syncs it before it removes an original
whose archive was just given its name.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import math
import os
import threading
import time
import weakref
from typing import Union

from ._lifecycle import at_exit, holding, start_thread
from ._reporting import Reporter
from ._units import parse_duration

__all__ = [
    "Durability",
    "FsyncLike",
    "GroupCommit",
    "SyncEach",
    "parse_fsync",
    "sync_data",
    "sync_directory",
]

FsyncLike = Union[bool, int, float, str, datetime.timedelta, None]
FileId = tuple[int, int]

_FORMS = "True, False, or a group-commit interval > 0 (seconds, a timedelta, or '1 s', '5 min')"


def sync_data(fd: int) -> None:
    """Put the data of the file open on *fd* (and its size) on stable storage.

    ``fdatasync`` where there is one (it skips timestamps, which no reader of a
    log needs back after a crash); ``fsync`` elsewhere.  Looked up at each call
    so that tests can record the calls.
    """
    datasync = getattr(os, "fdatasync", None)
    (datasync or os.fsync)(fd)


def sync_directory(path: str) -> None:
    """Make the names in the directory *path* durable (what was created, renamed or
    removed there).  A no-op where directories cannot be opened (Windows) or
    synced (some network and FUSE filesystems answer EINVAL)."""
    if os.name == "nt":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(path or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def parse_fsync(value: FsyncLike) -> bool | float:
    """Validate the ``fsync`` option now, not at the first record: False (off), True
    (each record) or a group-commit interval in seconds.

    :raises ValueError: naming the value, for negative, zero, infinite or
        unparsable intervals and for values of other types.
    """
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float, str, datetime.timedelta)):
        raise ValueError(f"fsync={value!r}: expected {_FORMS}")
    try:
        seconds = parse_duration(value, "fsync")
    except (TypeError, ValueError):
        raise ValueError(f"fsync={value!r}: expected {_FORMS}") from None
    if not 0 < seconds < math.inf:
        raise ValueError(f"fsync={value!r}: expected {_FORMS}")
    return float(seconds)


class Durability:
    """What the handler calls at each step of the write path when ``fsync`` is on.

    :meth:`create` picks the subclass; ``fsync=False`` gives None, so that the
    default write path pays one ``is None`` test per record.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._directory_synced: FileId | None = None

    @staticmethod
    def create(fsync: bool | float, reporter: Reporter) -> Durability | None:
        """The durability of a parsed ``fsync`` option (see :func:`parse_fsync`):
        None when off."""
        if fsync is False:
            return None
        if fsync is True:
            return SyncEach()
        return GroupCommit(fsync, reporter)

    def opened(self, directory: str, file_id: FileId) -> None:
        """A file was opened (lock held): if it is not the one whose name was last made
        durable, sync its directory, which holds its name (just created, or just
        renamed into place by a rotation: ours or another process's)."""
        if file_id != self._directory_synced:
            sync_directory(directory)
            self._directory_synced = file_id

    def written(self, fd: int, file_id: FileId) -> None:
        """Records were appended to the file open on *fd* (lock released)."""
        raise NotImplementedError

    def before_rename(self, fd: int, file_id: FileId) -> None:
        """The active file open on *fd* is about to be renamed by a rotation (lock
        held): its content is on disk before its new name is (the backup is whole)."""
        sync_data(fd)

    def close(self) -> None:
        """The handler closes: nothing it wrote may stay unsynced."""

    def after_fork_in_child(self) -> None:
        """In a forked child: start without the parent's pending work."""


class SyncEach(Durability):
    """``fsync=True``: each write is synced before the call that made it returns."""

    def written(self, fd: int, file_id: FileId) -> None:
        sync_data(fd)


class GroupCommit(Durability):
    """``fsync=<seconds>``: a background thread syncs what this handler wrote, at most
    *interval* seconds after the first unsynced write.

    Per record, :meth:`written` compares one tuple when the file is already
    registered; the first write after a sync registers a duplicate of the
    descriptor, so the thread syncs the file written even if the handler has
    closed it since (a rotation noticed, ``keep_file_open=False``).
    """

    def __init__(self, interval: float, reporter: Reporter) -> None:
        super().__init__()
        self.interval = interval
        self._reporter = reporter
        self._reset()
        _committers.add(self)
        if not at_exit(_sync_all):  # after the batched queues are written out
            self._exiting = True

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[FileId, int] = {}  # file -> our duplicate of its descriptor
        self._current: FileId | None = None  # registered since the last sync
        self._since = 0.0  # time.time() of the oldest write not synced
        self._thread: threading.Thread | None = None
        self._closing = False
        self._exiting = False  # the process is ending: each write syncs at once

    def written(self, fd: int, file_id: FileId) -> None:
        # Unlocked fast test: the thread clears _current *before* it syncs, so a
        # write that still sees its file registered happened before that sync.
        if file_id == self._current:
            return
        with self._cond:
            if self._exiting:  # never registered: every write takes this path
                sync_data(fd)
                return
            if file_id not in self._pending:
                if not self._pending:
                    self._since = time.time()
                    self._cond.notify()  # the thread waits without a deadline
                self._pending[file_id] = os.dup(fd)
            self._current = file_id
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        start_thread(self, self._run, "mplog-fsync")  # re-entered: no second thread

    def _run(self) -> None:
        cond = self._cond
        while True:
            # Marked (see mplog._lifecycle.holding): a rotation waits for the condition
            # in before_rename holding the writers' lock, which a __del__ or collector's
            # callback that logs here would otherwise wait for.
            with holding(), cond:
                while True:
                    if self._closing:
                        return
                    if self._pending:
                        left = self._since + self.interval - time.time()
                        if not 0 < left <= self.interval:  # due, or the clock jumped
                            break
                        cond.wait(left)
                    else:
                        cond.wait()
            try:
                self.sync()
            except OSError as error:
                self._reporter.once("fsync", "syncing the log to disk failed (fsync)", error)
            else:
                self._reporter.recovered("fsync")

    def sync(self) -> None:
        """Sync every file written since the last sync, now, in the calling thread."""
        with holding(), self._cond:  # as in _run
            pending, self._pending, self._current = self._pending, {}, None
        failure: OSError | None = None
        for fd in pending.values():
            try:
                sync_data(fd)
            except OSError as error:
                failure = error
            finally:
                os.close(fd)
        if failure is not None:
            raise failure

    def before_rename(self, fd: int, file_id: FileId) -> None:
        sync_data(fd)
        with self._cond:  # synced: nothing left for the thread to do on this file
            duplicate = self._pending.pop(file_id, None)
            if self._current == file_id:
                self._current = None
        if duplicate is not None:
            os.close(duplicate)

    def close(self) -> None:
        """Stop the thread and sync what is left (reported, never raised); a later
        write starts the thread again."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._thread, self._closing = None, False
        try:
            self.sync()
        except OSError as error:
            self._reporter.report("syncing the log to disk failed (fsync)", error)

    def after_fork_in_child(self) -> None:
        """The parent syncs what it wrote; our copies of its descriptors only go."""
        for fd in self._pending.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reset()


_committers: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


def _sync_all() -> None:
    for committer in list(_committers):
        with committer._cond:
            committer._exiting = True
        with contextlib.suppress(OSError):
            committer.sync()
