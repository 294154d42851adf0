"""The active file: the one log file every process appends to.

:class:`ActiveFile` owns this process's descriptor on it, its identity and the
shared generation it belongs to, and the writer's side of PROTOCOL.md, with the
inter-process lock held (the shared state is :mod:`mplog.header`'s):

* **append** (PROTOCOL.md 3.1): one ``os.write`` of a whole record, between the
  in-flight mark and the published size; on the header's words directly when
  nothing is due (the fast path), else after *prepare* (the rotation policy).
* **check** (3.2): stat the path every *watch_interval* seconds and whenever the
  shared generation moved; reopen, announce, notice foreign writers.
* **recover** (5.1): cut off the partial record of a writer killed mid-record.
* **cut**: a write that failed part-way is cut back, so no torn record stays.

On a network filesystem the differences are PROTOCOL.md's section 7.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
import struct
import time
import weakref
from typing import TYPE_CHECKING, Callable

from .durability import Durability
from .header import MAGIC, SIZE_AT, WRITE_END_AT, SharedState, pack_word, unpack_state
from .lock import FileLock
from .permissions import FilePermissions
from .presence import Presence
from .reporting import Reporter

if TYPE_CHECKING:  # mplog.rollover imports this module
    from .rollover import Rollover

__all__ = ["ActiveFile"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_DSYNC = getattr(os, "O_DSYNC", 0) or getattr(os, "O_SYNC", 0)

_pread, _pwrite, _fstat, _lseek, SEEK_CUR = os.pread, os.pwrite, os.fstat, os.lseek, os.SEEK_CUR

#: :meth:`ActiveFile.arm`'s size limit for "never by size".
_NO_LIMIT = 1 << 63


class ActiveFile:
    """This process's view of the log file that every process appends to.

    :param path: the log file.
    :param lock: the writers' lock (its header holds the shared state).
    :param permissions: mode and owner of a newly created file.
    :param reporter: where findings and failures go.
    :param durability: the ``fsync`` policy, or None.
    :param rotation: the rotation policy (:class:`~mplog.rollover.Rollover`), asked
        before a write when the fast path does not apply (see :meth:`prepare`).
    :param network: the log is on a filesystem several hosts share.
    :param watch_interval: seconds between two checks of the path.
    :param truncate: truncate the file at the first open (``mode="w"``), if no other
        process has it open (see *presence*).
    :param presence: this handler's sign that it has the log open
        (:mod:`mplog.presence`); None for a device or pipe.
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
        lock: FileLock,
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
            self.reporter.notify(
                f"{self.path} is on a network filesystem mounted with local locks "
                "(local_lock= or nolock): the lock does not exclude other hosts, so "
                "processes on several hosts can overwrite each other's records; mount it "
                "with local_lock=none, or give each host its own log"
            )
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

    def identity(self, st: os.stat_result) -> tuple[int, int]:
        """What identifies a file for every process: (device, inode) on a local
        filesystem; on a network one the inode alone (device numbers differ from
        mount to mount, the server's file id does not)."""
        return (0 if self.network else st.st_dev, st.st_ino)

    # -- appending ---------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Append one encoded record under the inter-process lock, rotating first if due."""
        lock = self.lock
        shared = lock.acquire()
        try:
            # The fast path: what prepare and write do when nothing is due (no watch,
            # no rotation, no other writer's rotation or crash to handle), inlined on
            # the header's words (mplog.header). Per record, Python calls cost as much
            # as the system calls.
            n = len(data)
            lock_fd = shared.fd
            fast = False
            if self.watched_at <= time.time() < self.fast_until:
                try:
                    magic, generation, size, end = unpack_state(_pread(lock_fd, 32, 0))
                except struct.error:  # the lock file was truncated: prepare repairs it
                    magic = b""
                fast = (
                    magic == MAGIC
                    and generation == self.generation
                    and size == end  # no write in flight
                    and size + n <= self.fast_limit
                )
            if fast:
                end = size + n
                word = pack_word(end)
                _pwrite(lock_fd, word, WRITE_END_AT)  # SharedState.begin_write
                try:
                    written = os.write(self.fd, data)  # type: ignore[arg-type]
                except OSError:
                    self.cut_partial(shared, 0)
                    raise
                if written != n:
                    self.write_rest(shared, data, written)
                _pwrite(lock_fd, word + word, SIZE_AT)  # SharedState.end_write
                if _lseek(self.fd, 0, SEEK_CUR) != end:  # type: ignore[arg-type]  # see write
                    self.foreign_write(shared, data)
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

    def write(self, shared: SharedState, data: bytes, size: int) -> None:
        """Append *data* whole at *size* (-1: not a regular file) and publish the
        new size; on failure, cut off the partial record (lock held)."""
        if size < 0:  # nothing to publish: nobody rotates or measures a device
            self.write_rest(None, data, 0)
            return
        record = data
        if not size and self.file_start is not None:  # a file's first record: its start
            data = self.file_start() + data
        end = size + len(data)
        shared.begin_write(end)
        if self.network:
            self._write_at(shared, data, size)
            shared.end_write(end)
            return
        self.write_rest(shared, data, 0)
        shared.end_write(end)
        if _lseek(self.fd, 0, SEEK_CUR) != end:  # type: ignore[arg-type]
            self.foreign_write(shared, record)

    def foreign_write(self, shared: SharedState, data: bytes) -> None:
        """The file grew behind the shared size: a writer that does not update it
        (concurrent-log-handler during a migration) appended since our last check
        (lock held, *data* just written).

        That writer may also have rotated the file since, and with ``use_gzip`` it
        deletes the plain backup once compressed: then *data* went into a file no
        name leads to any more, and is written again to the file now at the path."""
        shared.saw_foreign(time.time())
        if not _fstat(self.fd).st_nlink:  # type: ignore[arg-type]
            self.close()  # the next check reopens the path (see close)
            self.write(shared, data, self.prepare(shared, len(data)))

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

    def _write_at(self, shared: SharedState, data: bytes, size: int) -> None:
        """Network filesystem: write *data* at offset *size* (the published one, not
        this host's idea of the end of file), synchronously (the file is open
        ``O_DSYNC``), so that it is on the server before the lock is released and
        the next host's write lands after it; on failure, cut the file back to
        *size* (lock held)."""
        fd = self.fd
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

    def cut_partial(self, shared: SharedState, written: int) -> None:
        """A write failed after *written* bytes of its record: cut them off and
        publish the real size (we hold the lock: nobody appended since)."""
        fd = self.fd
        assert fd is not None
        real = os.fstat(fd).st_size
        if written:
            real -= written
            os.ftruncate(fd, real)
        shared.end_write(real)
        if not real:  # the next record is the file's first: not the fast path (see write)
            self.fast_until = 0.0

    # -- checking ----------------------------------------------------------------------

    def sync(self, shared: SharedState, now: float, check: bool = False) -> tuple[int, bool]:
        """Cut off a record a writer left torn when it died; check the path (and the lock
        file) if asked, if another process changed the active file, or if the watch
        is due.  Return the active file's size and whether it was checked (lock held)."""
        generation, size, in_flight = shared.load()
        if in_flight:  # the last writer died in the middle of a record
            size = self.recover(shared)
        check = (
            check
            or generation != self.generation  # -1 while we hold no file
            # the watch is due, or the clock went back by more than the interval
            or not self.watched_at <= now < self.next_watch
            or not _fstat(shared.fd).st_nlink  # the lock file was deleted
        )
        if check:
            size = self.check(shared, now)
        return size, check

    def prepare(self, shared: SharedState, nbytes: int) -> int:
        """Make sure we append to the active file, rotate it first if the rotation
        policy says so; return its size, or -1 for a device or pipe (lock held)."""
        return self.rotation.prepare(self, shared, nbytes)

    def arm(self, until: float, limit: int) -> None:
        """Let :meth:`append` skip :meth:`prepare` until the next watch, or *until* (the
        next time-rotation check), whichever comes first, for records that keep the
        file within *limit* bytes (0: any size): the rotation policy's word, given
        with the lock held, the file checked (append still compares the generation,
        the size and the in-flight mark at every record)."""
        self.fast_limit = limit or _NO_LIMIT
        self.fast_until = 0.0 if self.network else min(self.next_watch, until)

    def disarm(self) -> None:
        """Send the next record through :meth:`prepare`: the rotation settings changed
        (any thread, with or without the lock)."""
        self.fast_until = 0.0

    def check(self, shared: SharedState, now: float) -> int:
        """Check the lock file; stat the path; reopen if the file we hold was renamed,
        deleted or replaced; publish the real size (lock held)."""
        problem = self.lock.verify()
        if problem is not None:
            self.reporter.notify(problem)
        if self.lock.foreign:  # made by concurrent-log-handler: a mixed fleet
            self.lock.foreign = False
            shared.saw_foreign(now)
        if self.network:
            return self._check_shared(shared, now)
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
        elif regular and st.st_size > shared.load()[1]:
            # Grown behind the shared size: a writer that does not update the header
            # (concurrent-log-handler during a migration, or another program).
            shared.saw_foreign(now)
        mixed = shared.foreign_until > now  # then check before every record
        self.generation = shared.load()[0]
        self.watched_at, self.next_watch = now, now + (0.0 if mixed else self.watch_interval)
        self.regular = regular
        if regular:
            shared.end_write(st.st_size)
        return st.st_size

    def _check_shared(self, shared: SharedState, now: float) -> int:
        """:meth:`check` on a network filesystem, where this host's view of the log
        may be stale: a name may still lead to the file another host renamed, and a
        cached size may be old.  The file the shared state announces is the truth: it
        is (re)opened until the name leads to it, rereading the directory if needed;
        only a file nobody announced (a new log, another program's) is announced."""
        try:
            current = self.identity(os.stat(self.path))
        except FileNotFoundError:
            current = None
        announced = shared.file_id()
        if self.fd is None or current != self.file_id or announced != self.file_id:
            self.close()
            self.open()
            if announced not in (self.file_id, (0, 0)):  # perhaps a stale name
                with contextlib.suppress(OSError):  # best effort: a read-only directory
                    self.refresh_directory()
                self.close()
                self.open()
        st = os.fstat(self.fd)  # type: ignore[arg-type]
        self.regular = stat.S_ISREG(st.st_mode)
        size = shared.load()[1]
        if announced != self.file_id:  # a new file, or another program's: announce it
            shared.new_file(st.st_size, self.file_id)
            size = st.st_size
        self.generation = shared.load()[0]
        self.watched_at, self.next_watch = now, now + self.watch_interval
        return size if self.regular else st.st_size

    def refresh_directory(self) -> None:
        """Network filesystem: make this host's view of the log's directory current.

        Another host's renames may not show here for a while (cached directory
        attributes), so a listing could miss a backup and a rename overwrite it.
        Creating and removing a file of our own makes the server's reply tell this
        client whether the directory changed since it last looked, and the client
        then drops what it cached (the name is one a compression sweep removes if a
        crash leaves it behind)."""
        folder, name = os.path.split(self.path)
        probe = os.path.join(folder, f".{name}.mplog-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)

    def recover(self, shared: SharedState) -> int:
        """Cut off the partial record of a writer killed mid-write (SIGKILL can end a
        large write part-way); return the active file's size (lock held)."""
        start, end = shared.in_flight()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            shared.end_write(0)
            return 0
        size = st.st_size
        if self.identity(st) == shared.file_id() and (self.network or start <= size < end):
            # (On a network filesystem this host's size may be stale; every complete
            # record before *start* reached the server before its writer unlocked.)
            os.truncate(self.path, start)
            size = start
        # else: the write completed (size == end), or another program changed the
        # file meanwhile: keep what is there.
        shared.end_write(size)
        return size

    def reopen_after_rename(self, shared: SharedState) -> int:
        """The file we held was just renamed to a backup (lock held): open the fresh
        active file and announce it; return its size."""
        self.fast_until = 0.0  # its first record goes through write (doRollover then logs)
        self.close()
        self.open()
        size = os.fstat(self.fd).st_size  # type: ignore[arg-type]
        self.generation = shared.new_file(size, self.file_id)
        return size
