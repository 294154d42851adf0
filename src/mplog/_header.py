"""The writers' shared state: the header of the lock file, read and written under the lock.

PROTOCOL.md specifies it (section 2: every field, who writes it and when; section 9:
versions) and tests/test_protocol.py pins its bytes.  The offsets below are its
constants (little-endian; format 3)::

    0   magic b"mplog\\0\\0\\3"
    8   generation
    16  size: where the last write began (published)
    24  write end: where the last write begun ends
    32  owner key (0: not claimed)
    40  time-rotation boundary (NaN: none)
    48  active file (st_dev, st_ino)
    64  foreign writers seen until (0: never)
    72  length of the owner's path; the path itself from 80 on

The header is read and written with ``pread``/``pwrite``, never through a memory
map: a map faults (SIGBUS, killing the process) when another program truncates
the file under it, and a forked child would keep the parent's lock description
open through the map's duplicate descriptor.  What a truncation cut off reads as
zeros; without the magic the header is not trusted (the fast path of
:meth:`ActiveFile.append <mplog._active.ActiveFile.append>` checks it at every
record) and the next path check repairs it (:meth:`SharedState.repair`) with a
random generation, which no writer holds.  Writers that do not update this header
(concurrent-log-handler during a migration) are PROTOCOL.md's section 8.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct

__all__ = [
    "FOREIGN_WINDOW",
    "HEADER_SIZE",
    "MAGIC",
    "SIZE_AT",
    "WRITE_END_AT",
    "SharedState",
    "owner_key",
    "pack_pair",
    "pack_word",
    "unpack_state",
]

MAGIC = b"mplog\x00\x00\x03"
SIZE_AT = 16
WRITE_END_AT = 24
_OWNER_AT = 32
_BOUNDARY_AT = 40
_FILE_ID_AT = 48
_FOREIGN_AT = 64
_PATH_LEN_AT = 72
_PATH_AT = 80
HEADER_SIZE = _PATH_AT  # the fixed part; the owner's path follows
_MAX_PATH = 4096
#: Seconds after the last sign of a writer that does not update the header during
#: which every mplog process checks the path before each record.
FOREIGN_WINDOW = 3600.0

_STATE = struct.Struct("<QQQ")  # generation, size, write end, at 8
_HEAD = struct.Struct("<8sQQQ")  # the magic and the state: what the fast path reads
_WORD = struct.Struct("<Q")
_PAIR = struct.Struct("<QQ")
_DOUBLE = struct.Struct("<d")
_FIXED = struct.Struct("<8sQQQQdQQdQ")  # the whole fixed part, 80 bytes

#: ``(magic, generation, size, write end) = unpack_state(pread(fd, 32, 0))``; raises
#: ``struct.error`` on a short read (a truncated lock file).
unpack_state = _HEAD.unpack
#: The bytes of one header word, for ``pwrite(fd, pack_word(n), SIZE_AT)``.
pack_word = _WORD.pack
#: The bytes of size and write end, for ``pwrite(fd, pack_pair(size, end), SIZE_AT)``.
pack_pair = _PAIR.pack


def owner_key(identity: str) -> int:
    """A stable, non-zero 64-bit key for a log's *identity* (see InterProcessLock)."""
    digest = hashlib.blake2b(os.fsencode(identity), digest_size=8).digest()
    return _WORD.unpack(digest)[0] or 1


class SharedState:
    """The writers' shared state in the lock file open on *fd*; use it with the lock held.

    .. versionadded:: 0.1
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        #: The lock file's descriptor (ActiveFile.append's fast path reads it directly).
        self.fd = fd

    def _read(self, size: int, at: int) -> bytes:
        """Read *size* bytes at *at*; what a truncation cut off reads as zeros."""
        return os.pread(self.fd, size, at).ljust(size, b"\0")

    def _write_word(self, value: int, at: int) -> None:
        os.pwrite(self.fd, _WORD.pack(value), at)

    # -- ownership and integrity ------------------------------------------------------

    def claim(self, log_path: str, key: int) -> str | None:
        """Make sure the header is mplog's and serves the log at *log_path*.

        A missing or foreign header (a new lock file, one created by
        concurrent-log-handler, a truncated one) is initialized; return the path
        of another log if the lock file serves that one (the caller refuses to
        share it), else None.
        """
        raw = os.pread(self.fd, _OWNER_AT + 8, 0)
        if len(raw) < _OWNER_AT + 8 or raw[:8] != MAGIC:
            self.repair()
            owner = 0
        else:
            owner = _WORD.unpack_from(raw, _OWNER_AT)[0]
        if key in (owner, 0):  # ours, or a bare lock (key 0) that claims nothing
            return None
        if owner != 0:
            return self._owner_path() or "<unknown>"
        self._write_owner(log_path, key)
        return None

    def valid(self, key: int) -> bool:
        """True if the header is intact and still claimed by the log with *key*."""
        raw = os.pread(self.fd, HEADER_SIZE, 0)
        return (
            len(raw) == HEADER_SIZE
            and raw[:8] == MAGIC
            and (key == 0 or _WORD.unpack_from(raw, _OWNER_AT)[0] == key)
        )

    def repair(self) -> None:
        """Write a fresh header: no active file known, no boundary, not claimed, and a
        random generation, so that no writer takes it for the one it knows."""
        generation = int.from_bytes(os.urandom(8), "little") >> 1
        os.pwrite(self.fd, _FIXED.pack(MAGIC, generation, 0, 0, 0, math.nan, 0, 0, 0.0, 0), 0)

    def _write_owner(self, log_path: str, key: int) -> None:
        path = os.fsencode(log_path)[:_MAX_PATH]
        os.pwrite(self.fd, _WORD.pack(len(path)) + path, _PATH_LEN_AT)
        self._write_word(key, _OWNER_AT)

    def _owner_path(self) -> str:
        length = _WORD.unpack(self._read(8, _PATH_LEN_AT))[0]
        return os.fsdecode(os.pread(self.fd, min(length, _MAX_PATH), _PATH_AT))

    def take_over(self, log_path: str, key: int) -> None:
        """Claim the header for the log with *key*, keeping the state: it is this
        log's, claimed by the processes that knew its directory by another inode
        (the directory was removed and made again)."""
        self._write_owner(log_path, key)

    def copy_from(self, other: SharedState) -> None:
        """Take over *other*'s state, but not its claim (the lock file was replaced:
        see LockFile.revalidate): the magic, the generation, the sizes, the boundary, the
        active file and the foreign writers' instant; the owner stays ours."""
        os.pwrite(self.fd, other._read(_OWNER_AT, 0), 0)
        os.pwrite(self.fd, other._read(_PATH_LEN_AT - _BOUNDARY_AT, _BOUNDARY_AT), _BOUNDARY_AT)

    # -- the active file ----------------------------------------------------------------

    def load(self) -> tuple[int, int, bool]:
        """Return (generation, size, whether the last write may be unfinished: its
        write end differs from the size)."""
        generation, size, end = _STATE.unpack(self._read(24, 8))
        return generation, size, end != size

    def state(self) -> tuple[int, int, int]:
        """Return (generation, size, write end)."""
        generation, size, end = _STATE.unpack(self._read(24, 8))
        return generation, size, end

    def begin_write(self, end: int) -> None:
        """Mark a write from the published size up to *end* as in flight (network
        filesystems, and writers of the published steps: PROTOCOL.md 3.1).

        If its process dies before :meth:`end_write`, the next lock holder finds the
        mark and cuts a partial record off (:meth:`mplog._active.ActiveFile.recover`).
        """
        self._write_word(end, WRITE_END_AT)

    def begin_append(self, size: int, end: int) -> None:
        """Publish *size* (where the previous write ended, found complete) and mark
        this write, from *size* to *end*, as begun: one ``pwrite``.  Nothing is
        published after the write: the next lock holder finds the file *end* bytes
        long if it completed (:meth:`mplog._active.ActiveFile.settle`)."""
        os.pwrite(self.fd, _PAIR.pack(size, end), SIZE_AT)

    def end_write(self, size: int) -> None:
        """Publish the active file's size and clear the in-flight mark (after a write,
        a recovery, or a stat)."""
        os.pwrite(self.fd, _PAIR.pack(size, size), SIZE_AT)

    def in_flight(self) -> tuple[int, int]:
        """The (start, end) of a write whose process died before finishing it."""
        start, end = _PAIR.unpack(self._read(16, SIZE_AT))
        return start, end

    def file_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the file the shared state describes."""
        dev, ino = _PAIR.unpack(self._read(16, _FILE_ID_AT))
        return dev, ino

    def new_file(self, size: int, file_id: tuple[int, int]) -> int:
        """Announce a new active file (rotated or replaced); return the new generation."""
        generation = (self.load()[0] + 1) & 0xFFFFFFFFFFFFFFFF
        os.pwrite(self.fd, _PAIR.pack(*file_id), _FILE_ID_AT)
        os.pwrite(self.fd, _STATE.pack(generation, size, size), 8)
        return generation

    def bump(self) -> None:
        """Send every writer through its full check at its next record."""
        self._write_word((self.load()[0] + 1) & 0xFFFFFFFFFFFFFFFF, 8)

    @property
    def boundary(self) -> float | None:
        """The end of the active file's time period, if a time rotation set one."""
        value: float = _DOUBLE.unpack(self._read(8, _BOUNDARY_AT))[0]
        return None if math.isnan(value) else value

    @boundary.setter
    def boundary(self, value: float | None) -> None:
        os.pwrite(self.fd, _DOUBLE.pack(math.nan if value is None else value), _BOUNDARY_AT)

    @property
    def foreign_until(self) -> float:
        """Until when writers that do not update this header may be active (0: none seen)."""
        value: float = _DOUBLE.unpack(self._read(8, _FOREIGN_AT))[0]
        return value if math.isfinite(value) else 0.0

    @foreign_until.setter
    def foreign_until(self, value: float) -> None:
        os.pwrite(self.fd, _DOUBLE.pack(value), _FOREIGN_AT)

    def saw_foreign(self, now: float) -> None:
        """Record a sign of a writer that does not update this header (PROTOCOL.md,
        section 8); the first one sends every writer through its full check."""
        if self.foreign_until <= now:
            self.bump()
        self.foreign_until = now + FOREIGN_WINDOW
