"""Reading a log back: is every record there exactly once, whole, and in order?

``mplog demo``, ``mplog bench``, the scripts in ``benchmarks/`` and the tests
log records that carry their writer's number and a sequence number; each
passes its own *parse* rule, which finds them in a line.  :func:`read_back`
reads the active file and every backup of one log in rotation order (numbered
backups from the highest number, then time-named ones by period and counter,
then the active file), decompressing ``.gz``, ``.bz2``, ``.xz`` and ``.zst``
backups, and counts what is missing, doubled, damaged or out of order.

It reads in chunks, never a whole file at once: memory the benchmark's parent
allocates stays in its resident set, and the workers it forks next start with it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from ._backups import Backups
from ._compressors import BUILTIN_SUFFIXES, reader_for
from ._retention import Retention

__all__ = ["Parse", "Verification", "read_back"]

#: A parse rule: the ``(writer, seq)`` of the record a line (without its newline)
#: holds, or None if the line is not one whole record.
Parse = Callable[[bytes], Optional[tuple[int, int]]]

_CHUNK = 1 << 16
# The period of every time schedule (TimeSchedule.suffix_pattern), 2024-01-10 to
# 2024-01-10_13-37-11: time-named backups are app.log.<period>[.<counter>].
_ANY_PERIOD = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?:_\d{2}(?:-\d{2}){0,2})?(?!\d)", re.ASCII)
_KEEP = Retention()  # never asked: the backups are only listed


@dataclass
class Verification:
    """What reading a log back found."""

    written: int = 0  # records the writers logged
    found: int = 0  # distinct records found
    lost: int = 0  # written, never found
    duplicated: int = 0  # found again after their first time
    torn: int = 0  # lines that are not one whole record of one of the writers
    out_of_order: int = 0  # found after a later record of the same writer
    files: list[str] = field(default_factory=list)  # names read, oldest first
    backups: int = 0  # of those, rotated files
    compressed: int = 0  # of those, compressed backups
    oversized: list[str] = field(default_factory=list)  # backups larger than max_bytes
    stray: list[str] = field(default_factory=list)  # other files, lock files aside

    @property
    def ok(self) -> bool:
        """Nothing lost, doubled, torn, reordered or oversized.  Stray files do not
        count: the directory may hold other things."""
        return not (
            self.lost or self.duplicated or self.torn or self.out_of_order or self.oversized
        )


def read_back(
    directory: str, log_name: str, parse: Parse, writers: int, records: int, *, max_bytes: int = 0
) -> Verification:
    """Read log *log_name* in *directory* and every backup of it back.

    *writers* writers numbered from 0 each logged *records* records numbered
    from 0, in order; *parse* finds them in the lines.  A line that is no
    record, or one of another writer or beyond *records*, is torn.  With
    *max_bytes*, a backup larger than that (decompressed) is oversized.
    """
    tally = _Tally(parse, writers, records)
    result = tally.result
    names, result.stray = _log_files(directory, log_name)
    for name in names:
        result.files.append(name)
        size = tally.read(os.path.join(directory, name))
        if name != log_name:
            result.backups += 1
            result.compressed += name.endswith(BUILTIN_SUFFIXES)
            if max_bytes and size > max_bytes:
                result.oversized.append(name)
    result.lost = result.written - result.found
    return result


class _Tally:
    """The records found so far, for each writer."""

    def __init__(self, parse: Parse, writers: int, records: int) -> None:
        self.parse = parse
        self.records = records
        self.seen = [bytearray(records) for _ in range(writers)]
        self.last = [-1] * writers
        self.result = Verification(written=writers * records)

    def read(self, path: str) -> int:
        """Count the records of the file at *path*; return its (decompressed) size."""
        size, rest = 0, b""
        for chunk in _chunks(path):
            size += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                self.line(line)
        if rest:  # the last line has no newline
            self.line(rest)
        return size

    def line(self, line: bytes) -> None:
        result = self.result
        record = self.parse(line)
        if record is None:
            result.torn += 1
            return
        writer, seq = record
        if not (0 <= writer < len(self.seen) and 0 <= seq < self.records):
            result.torn += 1
        elif self.seen[writer][seq]:
            result.duplicated += 1
        else:
            self.seen[writer][seq] = 1
            result.found += 1
            if seq < self.last[writer]:
                result.out_of_order += 1
            self.last[writer] = seq


def _chunks(path: str) -> Iterator[bytes]:
    """The content of the file at *path*, decompressed if it was compressed."""
    with open(path, "rb") as raw:
        reader = reader_for(path, raw)
        try:
            source = raw if reader is None else reader
            while chunk := source.read(_CHUNK):
                yield chunk
        finally:
            if reader is not None:
                reader.close()


def _log_files(directory: str, log_name: str) -> tuple[list[str], list[str]]:
    """The names of the log's files in rotation order (its backups as
    :class:`~mplog._backups.Backups` finds them, either naming, then the active file),
    and of the other files."""
    base = os.path.join(directory, log_name)
    names = []
    for pattern in (None, _ANY_PERIOD):  # size naming (oldest first), then time naming
        backups = Backups(base, _stdlib_name, _any_count, pattern, BUILTIN_SUFFIXES, _KEEP)
        names += [os.path.basename(backup.path) for backup in backups.files()]
    entries = os.listdir(directory)
    if log_name in entries:
        names.append(log_name)
    ours = set(names)
    stray = [
        name
        for name in entries
        # the lock file (mplog's and CLH's) and mplog's presence file
        if name not in ours and not (name.startswith(".__") and name.endswith((".lock", ".open")))
    ]
    return names, sorted(stray)


def _stdlib_name(name: str) -> str:
    """The writers' namer: none, the stdlib's names."""
    return name


def _any_count() -> int:
    """The writers' backupCount, unknown here: every number found counts."""
    return sys.maxsize
