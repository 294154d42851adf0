"""The active file: the one log file every process appends to.

:class:`ActiveFile` owns this process's descriptor on it, its identity and the
shared generation it belongs to, and the writer's side of PROTOCOL.md, with the
inter-process lock held (the shared state is :mod:`mplog._header`'s):

* **append** (PROTOCOL.md 3.1): one ``os.write`` of a whole record, after one
  ``pwrite`` that publishes where the previous write ended and marks this one as
  begun; on the header's words directly when nothing is due (the fast path), else
  after *prepare* (the rotation policy).  Whether the previous write completed,
  and whether somebody appended without publishing, the file's length tells
  (one ``lseek``), before anything is written.
* **check** (3.2): stat the path every *watch_interval* seconds and whenever the
  shared generation moved; reopen, announce, notice foreign writers.
* **settle** (5.1, :mod:`mplog._settle`): keep the last write begun if whole, cut off
  the partial record of a writer killed mid-record; cut back a write that failed
  part-way, so no torn record stays.

On a network filesystem the differences are PROTOCOL.md's section 7, and their
code is :mod:`mplog._netfs`'s.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import weakref
from typing import TYPE_CHECKING, Callable

from ._durability import Durability
from ._header import MAGIC, SIZE_AT, SharedState, pack_pair, unpack_state
from ._lock import InterProcessLock
from ._netfs import check_shared, local_locks_warning, write_at
from ._permissions import FilePermissions
from ._presence import Presence
from ._reporting import Reporter
from ._settle import Settling

if TYPE_CHECKING:  # mplog._rollover imports this module
    from ._rollover import Rollover

__all__ = ["ActiveFile"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_DSYNC = getattr(os, "O_DSYNC", 0) or getattr(os, "O_SYNC", 0)

_pread, _pwrite = os.pread, os.pwrite
_lseek, SEEK_END = os.lseek, os.SEEK_END

#: :meth:`ActiveFile.arm`'s size limit for "never by size".
_NO_LIMIT = 1 << 63


class ActiveFile(Settling):
    """This process's view of the log file that every process appends to.

    :param path: the log file.
    :param lock: the writers' lock (its header holds the shared state).
    :param permissions: mode and owner of a newly created file.
    :param reporter: where findings and failures go.
    :param durability: the ``fsync`` policy, or None.
    :param rotation: the rotation policy (:class:`~mplog._rollover.Rollover`), asked
        before a write when the fast path does not apply (see :meth:`prepare`).
    :param network: the log is on a filesystem several hosts share.
    :param watch_interval: seconds between two checks of the path.
    :param truncate: truncate the file at the first open (``mode="w"``), if no other
        process has it open (see *presence*).
    :param presence: this handler's sign that it has the log open
        (:mod:`mplog._presence`); None for a device or pipe.
    :param keep_open: keep the descriptor open between records.
    :param local_locks: the network filesystem's locks exclude this host only
        (reported at the first open).
    :param file_start: makes what starts each new file (the encoding's byte-order
        mark, the ``header`` line): written before the file's first record, by the
        process that writes it (records are encoded without a mark).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        path: str,
        lock: InterProcessLock,
        permissions: FilePermissions,
        reporter: Reporter,
        durability: Durability | None,
        rotation: Rollover,
        *,
        network: bool,
        watch_interval: float,
        truncate: bool,
        presence: Presence | None = None,
        keep_open: bool,
        local_locks: bool = False,
        file_start: Callable[[], bytes] | None = None,
    ) -> None:
        self.path = path
        self.lock = lock
        self.permissions = permissions
        self.reporter = reporter
        self.durability = durability
        self.rotation = rotation
        self.network = network
        self.watch_interval = watch_interval
        self.keep_open = keep_open
        self.file_start = file_start
        self._truncate = truncate
        self.presence = presence
        # A network filesystem whose locks only this host sees cannot keep hosts
        # apart: said once, at the first open.
        self._local_locks_unreported = local_locks
        #: The fast path's size test, set with *fast_until* by :meth:`arm`: the
        #: rotation policy's size limit when it last let append skip :meth:`prepare`.
        self.fast_limit = _NO_LIMIT
        self.fd: int | None = None
        self.stream: io.FileIO | None = None
        #: Every stream opened here, current or since replaced (and closed).
        self.streams: weakref.WeakSet[io.FileIO] = weakref.WeakSet()
        self.file_id: tuple[int, int] = (-1, -1)
        self.generation = -1  # the shared generation of the file we hold
        # When we last stat'ed the path; the next time; until when append may skip
        # prepare (see arm).
        self.watched_at = self.next_watch = self.fast_until = 0.0
        self.regular = True
        self._close_failed = False

    # -- the descriptor ----------------------------------------------------------------

    def open(self) -> io.FileIO:
        """Open the log file for appending (bytes, unbuffered); return the stream.

        On a network filesystem: no ``O_APPEND`` (records go at the published
        offset), and ``O_DSYNC``: each write reaches the server before the lock is
        released, and the NFS client sends exactly the bytes written, never a whole
        cached page whose rest this host wrongly believes empty (another host's
        records: NUL bytes)."""
        flags = (_OPEN_FLAGS & ~os.O_APPEND) | _DSYNC if self.network else _OPEN_FLAGS
        presence = self.presence
        # A device or pipe has nothing to start anew; a handler already counted (an
        # earlier open was interrupted) decides nothing now.
        alone = True if presence is None else not presence.joined and presence.join()
        if presence is not None and presence.mismatch is not None:
            recorded, presence.mismatch = presence.mismatch, None
            self.reporter.notify(
                f"{self.path} is written with other rotation settings by processes that "
                f"have it open ({recorded}) than by this one ({presence.settings()}); the "
                "smallest size and the earliest time win, so give every process the same"
            )
        if self._truncate:
            if alone:  # mode="w" starts a new file only if no other process has this one open
                flags |= os.O_TRUNC
            self._truncate = False
        fd = self.permissions.open(self.path, flags)
        try:
            st = os.fstat(fd)
            stream = io.FileIO(fd, "ab", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        self.streams.add(stream)
        self.fd, self.file_id, self.stream = fd, self.identity(st), stream
        if self._local_locks_unreported:
            self._local_locks_unreported = False
            self.reporter.notify(local_locks_warning(self.path))
        if self.durability is not None and stat.S_ISREG(st.st_mode):
            self.durability.opened(os.path.dirname(self.path), self.file_id)
        return stream

    def detach(self) -> None:
        """Close our descriptor and stop counting as a process that has the log open
        (the handler's ``close()``; the next :meth:`open` counts again)."""
        self.close()
        if self.presence is not None:
            self.presence.leave()

    def close(self) -> None:
        """Close our descriptor (the file stays the active one for the others); a failing
        close (EIO: NFS sends data late) frees it all the same, and is reported once."""
        # Whoever opens next checks the path first; no shared generation is -1, so this
        # also keeps append off its fast path (first: an exception arriving between the
        # two lines must not leave the fast path on without a descriptor).
        self.generation = -1
        stream, self.stream, self.fd = self.stream, None, None
        if stream is not None:
            try:
                stream.close()
            except OSError as error:
                self._close_failed = True
                message = f"closing {self.path} failed; what was written may not be on disk"
                self.reporter.once("close", message, error)
            else:
                if self._close_failed:
                    self._close_failed = False
                    self.reporter.recovered("close")

    # -- appending ---------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Append one encoded record under the inter-process lock, rotating first if due."""
        lock = self.lock
        shared = lock.acquire()
        try:
            # The fast path (PROTOCOL.md 3.1 steps 2-5): what prepare and write do when
            # nothing is due (no watch, no rotation, no other writer's rotation or
            # crash to handle), inlined on the header's words (mplog._header). Per
            # record, Python calls cost as much as the system calls.
            n = len(data)
            if self.watched_at <= time.time() < self.fast_until:
                lock_fd, fd = shared.fd, self.fd
                try:
                    magic, generation, _, end = unpack_state(_pread(lock_fd, 32, 0))
                except struct.error:  # the lock file was truncated: prepare repairs it
                    magic = b""
                # The file we hold is the active one, and its length is where the last
                # write begun ends: that write completed and nobody appended since
                # (else sync tells a torn record, a foreign writer, a truncation).
                if (
                    magic == MAGIC
                    and generation == self.generation
                    and end + n <= self.fast_limit
                    and _lseek(fd, 0, SEEK_END) == end  # type: ignore[arg-type]
                ):
                    # SharedState.begin_append: publish end, mark this record begun.
                    _pwrite(lock_fd, pack_pair(end, end + n), SIZE_AT)
                    try:
                        written = os.write(fd, data)  # type: ignore[arg-type]
                    except OSError:
                        self.cut_partial(shared, 0)
                        raise
                    if written != n:
                        self.write_rest(shared, data, written)
                else:
                    self.write(shared, data, self.prepare(shared, n))
            else:
                self.write(shared, data, self.prepare(shared, n))
        finally:
            lock.release()
        if self.durability is not None or not self.keep_open:  # no call per record otherwise
            self.written()

    def written(self) -> None:
        """After a write, with the lock released: sync it if the ``fsync`` policy says
        so, close the file if it is not kept open."""
        if self.durability is not None and self.regular:
            # After the unlock, so other writers append while this one waits for the
            # disk, yet before returning: the record is in the page cache of the file
            # open on our descriptor, and syncing it flushes every dirty page of that
            # file, whoever wrote it. Renamed by a rotation meanwhile, it is still that
            # file (the rotator synced its name); nobody cuts a complete record off.
            self.durability.written(self.fd, self.file_id)  # type: ignore[arg-type]
        if not self.keep_open:
            self.close()

    def write(self, shared: SharedState, data: bytes, size: int) -> int:
        """Append *data* whole at *size* (-1: not a regular file), the size
        :meth:`settle` (or a rotation) found, publishing *size* and marking the write
        as begun; on failure, cut off the partial record (lock held).  Return where
        the file now ends (with the file's start, if *data* is its first record)."""
        if size < 0:  # nothing to publish: nobody rotates or measures a device
            self.write_rest(None, data, 0)
            return size
        if not size and self.file_start is not None:  # a file's first record: its start
            data = self.file_start() + data
        end = size + len(data)
        if self.network:  # the mark, the write at the published size, the publish
            shared.begin_write(end)
            write_at(self, shared, data, size)
            shared.end_write(end)
        else:
            shared.begin_append(size, end)
            self.write_rest(shared, data, 0)
        return end

    def write_rest(self, shared: SharedState | None, data: bytes, written: int) -> None:
        """Write *data* from offset *written* on: the loop of a short write (rare,
        but legal); on failure, cut off what this record wrote (lock held)."""
        try:
            while written < len(data):
                written += os.write(self.fd, memoryview(data)[written:])  # type: ignore[arg-type]
        except OSError:
            if shared is not None:
                self.cut_partial(shared, written)
            raise

    # -- checking ----------------------------------------------------------------------

    def prepare(self, shared: SharedState, nbytes: int) -> int:
        """Make sure we append to the active file, rotate it first if the rotation
        policy says so; return its size, or -1 for a device or pipe (lock held)."""
        return self.rotation.prepare(self, shared, nbytes)

    def arm(self, until: float, limit: int) -> None:
        """Let :meth:`append` skip :meth:`prepare` until the next watch, or *until* (the
        next time-rotation check), whichever comes first, for records that keep the
        file within *limit* bytes (0: any size): the rotation policy's word, given
        with the lock held, the file checked (append still compares the generation,
        the write end and the file's length at every record)."""
        self.fast_limit = limit or _NO_LIMIT
        self.fast_until = 0.0 if self.network else min(self.next_watch, until)

    def disarm(self) -> None:
        """Send the next record through :meth:`prepare`: the rotation settings changed
        (any thread, with or without the lock)."""
        self.fast_until = 0.0

    def check(self, shared: SharedState, now: float) -> int:
        """Check the lock file; stat the path; reopen if the file we hold was renamed,
        deleted or replaced; publish the real size (lock held)."""
        problem = self.lock.revalidate()
        if problem is not None:
            self.reporter.notify(problem)
        if self.lock.foreign:  # made by concurrent-log-handler: a mixed fleet
            self.lock.foreign = False
            shared.saw_foreign(now)
        if self.network:
            return check_shared(self, shared, now)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if self.fd is None or st is None or (st.st_dev, st.st_ino) != self.file_id:
            self.close()
            self.open()
            st = os.fstat(self.fd)  # type: ignore[arg-type]
        regular = stat.S_ISREG(st.st_mode)
        announced = shared.file_id()
        if announced != self.file_id:
            # Not the file the others were told about (another program moved it, or
            # a rotation died half-way): announce it, so they reopen at once.
            if regular and st.st_size and announced != (0, 0):
                # It already holds records no mplog process announced: a writer that
                # does not update the header rotated (concurrent-log-handler).
                shared.saw_foreign(now)
            shared.new_file(st.st_size, self.file_id)
        elif regular and st.st_size > shared.state()[2]:
            # Grown past the last write begun: a writer that does not update the header
            # (concurrent-log-handler during a migration, or another program).
            shared.saw_foreign(now)
        mixed = shared.foreign_until > now  # then check before every record
        self.generation = shared.load()[0]
        self.watched_at, self.next_watch = now, now + (0.0 if mixed else self.watch_interval)
        self.regular = regular
        if regular:
            shared.end_write(st.st_size)
        return st.st_size

    def reopen_after_rename(self, shared: SharedState) -> int:
        """The file we held was just renamed to a backup (lock held): open the fresh
        active file and announce it; return its size."""
        self.fast_until = 0.0  # its first record goes through write (doRollover then logs)
        self.close()
        self.open()
        size = os.fstat(self.fd).st_size  # type: ignore[arg-type]
        self.generation = shared.new_file(size, self.file_id)
        return size
