"""Settling the last write begun: what the next lock holder finds it left.

Between two records the lock file's header says where the last write begun starts
(*size*) and ends (*write end*); whether it completed, the file's length tells
(PROTOCOL.md 3.1 and 5.1).  :class:`Settling` is the part of
:class:`~mplog._active.ActiveFile` that reads that length before writing, keeps a
whole record, cuts off a torn one, notices a writer that appended without
publishing (section 8) or a file truncated behind the writers, decides whether the
path must be checked, and cuts back a record whose own write failed part-way.
Every method runs with the lock held.
"""

from __future__ import annotations

import os
import time

from ._header import SharedState

__all__ = ["Settling"]

_lseek, SEEK_END = os.lseek, os.SEEK_END


class Settling:
    """How the active file settles a write (a base of :class:`~mplog._active.ActiveFile`,
    which sets these attributes).

    .. versionadded:: 0.1
    """

    path: str
    network: bool
    fd: int | None
    generation: int
    regular: bool
    watched_at: float
    next_watch: float
    fast_until: float

    def identity(self, st: os.stat_result) -> tuple[int, int]:
        """What identifies a file for every process: (device, inode) on a local
        filesystem; on a network one the inode alone (device numbers differ from
        mount to mount, the server's file id does not)."""
        return (0 if self.network else st.st_dev, st.st_ino)

    def settle(self, shared: SharedState, now: float, check: bool = False) -> tuple[int, bool]:
        """Settle the last write begun (cut off a record a writer left torn when it
        died, notice a writer that appended without publishing); check the path (and
        the lock file) if asked, if another process changed the active file, if the
        file grew or shrank behind the writers, or if the watch is due.  Return the
        active file's size (published, or about to be by the next write) and whether
        it was checked."""
        generation, size, end = shared.state()
        if generation == self.generation and self.regular and not self.network:
            # We hold the active file: its length tells whether the last write begun
            # completed (PROTOCOL.md 5.1); the fast path published nothing after it.
            real = _lseek(self.fd, 0, SEEK_END)  # type: ignore[arg-type]
            if real == end:
                size = end
            else:
                if real > end:  # appended by a writer that does not publish (section 8)
                    shared.saw_foreign(now)
                check = check or not size <= real < end  # grown, or truncated meanwhile
                size = self.recover(shared)
        elif size != end:  # perhaps a writer died mid-record
            size = self.recover(shared)
        check = (
            check
            or generation != self.generation  # -1 while we hold no file
            # the watch is due, or the clock went back by more than the interval
            or not self.watched_at <= now < self.next_watch
            or not os.fstat(shared.fd).st_nlink  # the lock file was deleted
        )
        if check:
            size = self.check(shared, now)
        return size, check

    def check(self, shared: SharedState, now: float) -> int:
        """Check the path; return the active file's size (ActiveFile's)."""
        raise NotImplementedError

    def recover(self, shared: SharedState) -> int:
        """Settle a write that may not have completed: cut off the partial record of
        a writer killed mid-write (SIGKILL can end a large write part-way), keep a
        whole one; return the active file's size, published."""
        start, end = shared.in_flight()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            shared.end_write(0)
            return 0
        size = st.st_size
        if self.identity(st) == shared.file_id():
            if self.network or start <= size < end:
                # (On a network filesystem this host's size may be stale; every complete
                # record before *start* reached the server before its writer unlocked.
                # A local-mode writer's deferred mark is never cut here: it announced
                # the file as (device, inode), never equal to ours; PROTOCOL.md 7.)
                os.truncate(self.path, start)
                size = start
            elif size > end:  # grown past it: a writer that does not publish (section 8)
                shared.saw_foreign(time.time())
        # else: the write completed (size == end), or another program changed the
        # file meanwhile: keep what is there.
        shared.end_write(size)
        return size

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
