"""The handler's options, parsed once.

:meth:`Options.parse` takes every keyword the handler accepts (the stdlib's,
concurrent-log-handler's and mplog's own), validates each at configuration time
(an error names the option and the value given) and normalizes it: sizes to
bytes, durations to seconds, the time schedule, text encoding, permissions,
compression and retention to small objects.  The handler only wires the parts.
"""

from __future__ import annotations

import codecs
import datetime
import os
import sys
from dataclasses import dataclass
from typing import Union

from .compression import BUILTIN_SUFFIXES, CompressLike, Compressor
from .durability import FsyncLike, parse_fsync
from .permissions import FilePermissions, Owner
from .retention import Retention
from .triggers import TimeSchedule
from .units import DurationLike, SizeLike, parse_duration, parse_size

__all__ = ["FsyncLike", "Options", "PathLike"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Options:
    """Every option of a handler, validated and normalized (see the handler's docstring
    for their meaning).  ``max_bytes`` and ``backup_count`` are the initial values of
    the handler's ``maxBytes`` and ``backupCount``, which stay settable.

    .. versionadded:: 0.1
    """

    truncate: bool  # mode "w": truncate once, at the first open
    max_bytes: int
    backup_count: int
    schedule: TimeSchedule | None
    compressor: Compressor | None
    compress_delay: float
    retention: Retention
    encoding: str  # the file's, as given (default UTF-8)
    record_encoding: str  # each record's: the encoding without its byte-order mark
    bom: bytes  # the byte-order mark that starts each file (b"": none)
    errors: str
    newline: str  # what "\n" becomes in the file
    terminator: str
    permissions: FilePermissions
    lock_file_directory: PathLike | None
    lock_timeout: float | None  # validated by FileLock
    keep_file_open: bool
    debug: bool
    batched: bool
    queue_size: int
    drop_when_full: bool
    watch_interval: float
    fsync: bool | float  # False, True (each record), or a group-commit interval
    network_fs: bool | None  # None: detect from the mount table

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The suffixes of compressed backups to recognize: every built-in compressor's
        (the option may have changed since they were made) and a custom one's."""
        compressor = self.compressor
        if compressor is None or compressor.suffix in ("", *BUILTIN_SUFFIXES):
            return BUILTIN_SUFFIXES
        return (*BUILTIN_SUFFIXES, compressor.suffix)

    @classmethod
    def parse(
        cls,
        *,
        mode: str,
        maxBytes: SizeLike,
        backupCount: int,
        encoding: str | None,
        errors: str | None,
        when: str | DurationLike | None,
        interval: int,
        utc: bool,
        atTime: datetime.time | str | None,
        lock_file_directory: PathLike | None,
        lock_timeout: float | None,
        chmod: int | str | None,
        umask: int | str | None,
        owner: Owner | None,
        newline: str | None,
        terminator: str,
        unicode_error_policy: str | None,
        keep_file_open: bool,
        debug: bool,
        use_gzip: bool,
        compress: CompressLike,
        compress_delay: DurationLike,
        max_age: DurationLike | None,
        max_total_size: SizeLike | None,
        batched: bool,
        queue_size: int,
        overflow: str,
        watch_interval: float,
        fsync: FsyncLike,
        network_fs: bool | None,
    ) -> Options:
        """Validate and normalize the handler's options.

        :raises ValueError: (or :class:`TypeError`, :class:`LookupError` for an
            unknown codec) naming the option and the value given.
        """
        if not isinstance(mode, str) or mode.replace("b", "").replace("+", "") not in ("a", "w"):
            raise ValueError(f"mode={mode!r}: expected 'a' (append) or 'w' (truncate)")
        schedule = None if when is None else TimeSchedule.parse(when, interval, utc, atTime)
        max_bytes = parse_size(maxBytes, "maxBytes")
        backup_count = parse_backup_count(backupCount)
        retention = Retention.parse(0, max_age, max_total_size)
        size_rotation = max_bytes and (backup_count > 0 or schedule is not None)
        if retention.by_age_or_size and not size_rotation and schedule is None:
            raise ValueError(
                f"max_age={max_age!r}, max_total_size={max_total_size!r}: size-only rotation "
                "keeps numbered backups, which needs maxBytes and backupCount > 0 (or give when=)"
            )
        codec, codec_errors, line_end = _text(encoding, errors, unicode_error_policy, newline)
        record_codec, bom = _byte_order_mark(codec)
        if not isinstance(terminator, str):
            raise TypeError(f"terminator={terminator!r}: expected a str")
        if overflow not in ("block", "drop"):
            raise ValueError(f"overflow={overflow!r}: expected 'block' or 'drop'")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size={queue_size!r}: expected a whole number >= 1")
        if network_fs is not None and not isinstance(network_fs, bool):
            raise ValueError(f"network_fs={network_fs!r}: expected True, False or None (detect)")
        return cls(
            truncate=mode.startswith("w"),
            max_bytes=max_bytes,
            backup_count=backup_count,
            schedule=schedule,
            compressor=Compressor.parse(compress, use_gzip),
            compress_delay=parse_duration(compress_delay, "compress_delay"),
            retention=retention,
            encoding=codec,
            record_encoding=record_codec,
            bom=bom,
            errors=codec_errors,
            newline=line_end,
            terminator=terminator,
            permissions=FilePermissions.parse(chmod, umask, owner),
            lock_file_directory=lock_file_directory,
            lock_timeout=lock_timeout,
            keep_file_open=keep_file_open,
            debug=debug,
            batched=batched,
            queue_size=queue_size,
            drop_when_full=overflow == "drop",
            watch_interval=_watch_interval(watch_interval),
            fsync=parse_fsync(fsync),
            network_fs=network_fs,
        )


def parse_backup_count(value: int) -> int:
    """Validate ``backupCount`` (also when set on a live handler)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"backupCount={value!r}: expected a whole number >= 0")
    return value


def _text(
    encoding: str | None,
    errors: str | None,
    unicode_error_policy: str | None,
    newline: str | None,
) -> tuple[str, str, str]:
    """Validate the text options now, not at the first record; return
    (encoding, errors, newline to write)."""
    encoding = encoding or "utf-8"
    try:
        "".encode(encoding)
    except LookupError as error:  # unknown, or not a text encoding ("rot13", "hex")
        raise LookupError(f"encoding={encoding!r}: {error}") from error
    if errors and unicode_error_policy and errors != unicode_error_policy:
        raise ValueError(
            f"errors={errors!r} and unicode_error_policy={unicode_error_policy!r} disagree; "
            "give only one"
        )
    errors = errors or unicode_error_policy or "strict"
    codecs.lookup_error(errors)
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"newline={newline!r}: expected None, '', '\\n', '\\r' or '\\r\\n'")
    return encoding, errors, os.linesep if newline is None else (newline or "\n")


# Encodings that start their output with a byte-order mark, and their twin without it.
_WITHOUT_MARK = {
    "utf-8-sig": "utf-8",
    "utf-16": f"utf-16-{sys.byteorder[0]}e",  # the mark says which: this machine's order
    "utf-32": f"utf-32-{sys.byteorder[0]}e",
}


def _byte_order_mark(encoding: str) -> tuple[str, bytes]:
    """Return (the encoding to encode each record with, the mark that starts each file).

    ``"x".encode("utf-16")`` starts with a byte-order mark: encoded one record at a
    time, every record would carry one (a JSON-lines reader fails from the second
    line on).  Like the stdlib's FileHandler, which writes one per file, mplog
    writes it once, at the start of each new file; records are encoded without it.
    """
    mark = "".encode(encoding)
    if not mark:
        return encoding, b""
    twin = _WITHOUT_MARK.get(codecs.lookup(encoding).name)
    if twin is None or "x".encode(encoding) != mark + "x".encode(twin):
        raise ValueError(
            f"encoding={encoding!r} writes {mark!r} before every text it encodes, and mplog "
            "encodes each record on its own: choose an encoding without it (for example "
            "'utf-8', 'utf-16-le' or 'utf-16-be')"
        )
    return twin, mark


def _watch_interval(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"watch_interval={value!r}: expected seconds >= 0")
    return float(value)
