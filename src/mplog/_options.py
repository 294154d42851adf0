"""The handler's options, parsed once.

:meth:`Options.parse` takes every argument the handler accepts (the stdlib's,
concurrent-log-handler's and mplog's own), gathered once in :class:`Arguments`,
validates each at configuration time (an error names the option and the value
given) and normalizes it: sizes to bytes, durations to seconds, the time
schedule, text encoding, permissions, compression and retention to small
objects.  The handler only wires the parts.  :func:`log_path` checks the log's
name the same way (a config file given as the log, a name that can only be a
directory).
"""

from __future__ import annotations

import codecs
import datetime
import errno
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Union

from ._compressors import BUILTIN_SUFFIXES, CompressLike, Compressor
from ._durability import FsyncLike, parse_fsync
from ._first_line import HeaderLike, parse_header
from ._permissions import FilePermissions, Owner
from ._placeholders import expand_placeholders
from ._retention import Retention
from ._triggers import TimeSchedule
from ._units import DurationLike, SizeLike, parse_duration, parse_size

__all__ = ["CONFIG_SUFFIXES", "Arguments", "FsyncLike", "Options", "PathLike", "log_path"]

PathLike = Union[str, "os.PathLike[str]"]

#: Names of configuration files, refused as a log: ``setup_logging("logging.yaml")``
#: for ``setup_logging(config="logging.yaml")`` would append records to the config.
CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf")


def log_path(filename: PathLike) -> str:
    """The absolute path of the log *filename*, placeholders expanded, once it is checked.

    :raises ValueError: *filename* ends like a configuration file (see
        :data:`CONFIG_SUFFIXES`; a log of JSON lines is ``.jsonl``), or with a path
        separator (a directory).
    :raises IsADirectoryError: *filename* is an existing directory.

    .. versionadded:: 0.1
    """
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"filename={filename!r}: expected a str or a path")
    name = os.fspath(filename)
    if not isinstance(name, str):
        raise TypeError(f"filename={filename!r}: expected a str or a path")
    suffix = os.path.splitext(name)[1]
    if suffix.lower() in CONFIG_SUFFIXES:
        raise ValueError(
            f"filename={name!r} is named like a configuration file ({suffix}), not a log: "
            f"mplog would append log records to it. To apply a logging configuration, use "
            f"mplog.setup_logging(config={name!r}); to log into a file, give it a log's name "
            "('app.log', or 'app.jsonl' for JSON lines)"
        )
    if name.endswith(("/", os.sep)) or (os.altsep and name.endswith(os.altsep)):
        stem = name.rstrip("/" + os.sep + (os.altsep or ""))
        raise ValueError(
            f"filename={name!r} names a directory (it ends with a path separator), not a "
            f"log file: give a file in it, such as {os.path.join(stem, 'app.log')!r}"
        )
    path = os.path.abspath(expand_placeholders(name))
    if os.path.isdir(path):
        raise IsADirectoryError(
            errno.EISDIR,
            f"cannot log to {path}: it is a directory; give a file in it, such as "
            f"{os.path.join(path, 'app.log')}",
        )
    return path


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
    header: Callable[[], str] | None  # makes the first line of each new file
    errors: str
    newline: str  # what "\n" becomes in the file
    terminator: str
    permissions: FilePermissions
    lock_file_directory: PathLike | None
    lock_timeout: float | None
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
    def parse(cls, given: Arguments) -> Options:
        """Validate and normalize the handler's arguments.

        :raises ValueError: (or :class:`TypeError`, :class:`LookupError` for an
            unknown codec) naming the option and the value given.
        """
        mode = given.mode
        if not isinstance(mode, str) or mode.replace("b", "").replace("+", "") not in ("a", "w"):
            raise ValueError(f"mode={mode!r}: expected 'a' (append) or 'w' (truncate)")
        schedule = None
        if given.when is not None:
            schedule = TimeSchedule.parse(given.when, given.interval, given.utc, given.atTime)
        max_bytes = parse_size(given.maxBytes, "maxBytes")
        backup_count = parse_backup_count(given.backupCount)
        retention = Retention.parse(0, given.max_age, given.max_total_size)
        size_rotation = max_bytes and (backup_count > 0 or schedule is not None)
        if retention.by_age_or_size and not size_rotation and schedule is None:
            raise ValueError(
                f"max_age={given.max_age!r}, max_total_size={given.max_total_size!r}: size-only "
                "rotation keeps numbered backups, which needs maxBytes and backupCount > 0 (or "
                "give when=)"
            )
        codec, codec_errors, line_end = _text(
            given.encoding, given.errors, given.unicode_error_policy, given.newline
        )
        record_codec, bom = _byte_order_mark(codec)
        terminator, overflow, queue_size = given.terminator, given.overflow, given.queue_size
        if not isinstance(terminator, str):
            raise TypeError(f"terminator={terminator!r}: expected a str")
        if overflow not in ("block", "drop"):
            raise ValueError(f"overflow={overflow!r}: expected 'block' or 'drop'")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size={queue_size!r}: expected a whole number >= 1")
        network_fs = given.network_fs
        if network_fs is not None and not isinstance(network_fs, bool):
            raise ValueError(f"network_fs={network_fs!r}: expected True, False or None (detect)")
        lock_timeout = given.lock_timeout
        options = cls(
            truncate=mode.startswith("w"),
            max_bytes=max_bytes,
            backup_count=backup_count,
            schedule=schedule,
            compressor=Compressor.parse(given.compress, given.use_gzip),
            compress_delay=parse_duration(given.compress_delay, "compress_delay"),
            retention=retention,
            encoding=codec,
            record_encoding=record_codec,
            bom=bom,
            header=parse_header(given.header),
            errors=codec_errors,
            newline=line_end,
            terminator=terminator,
            permissions=FilePermissions.parse(given.chmod, given.umask, given.owner),
            lock_file_directory=given.lock_file_directory,
            lock_timeout=None if lock_timeout is None else _lock_timeout(lock_timeout),
            keep_file_open=given.keep_file_open,
            debug=given.debug,
            batched=given.batched,
            queue_size=queue_size,
            drop_when_full=overflow == "drop",
            watch_interval=_watch_interval(given.watch_interval),
            fsync=_fsync(given.fsync),
            network_fs=network_fs,
        )
        if max_bytes and not backup_count and schedule is None:  # once all is valid
            # The stdlib's rule, kept for drop-in compatibility, but nobody means it.
            warnings.warn(
                f"maxBytes={given.maxBytes!r} with backupCount=0 never rotates (as in the "
                "stdlib: there is no backup to rotate into), so the file grows past maxBytes; "
                "give backupCount=5 (or the number of rotated files to keep), or maxBytes=0",
                UserWarning,
                stacklevel=3,  # the handler's caller
            )
        return options


@dataclass(frozen=True)
class Arguments:
    """The arguments of a handler, as given: one field per parameter of
    ``ConcurrentRotatingFileHandler.__init__``, in its order, and nothing else.

    This is the one list of options: the handler passes its arguments here once,
    by name (a parameter without a field, or a field without a parameter, fails
    every construction), :meth:`Options.parse` reads them from here, and pickling
    carries them (see ``ConcurrentRotatingFileHandler.__reduce__``).  Defaults,
    types and documentation are the handler's signature's.
    """

    filename: PathLike
    mode: str
    maxBytes: SizeLike
    backupCount: int
    encoding: str | None
    delay: bool
    errors: str | None
    when: str | DurationLike | None
    interval: int
    utc: bool
    atTime: datetime.time | str | None
    lock_file_directory: PathLike | None
    lock_timeout: DurationLike | None
    chmod: int | str | None
    umask: int | str | None
    owner: Owner | None
    newline: str | None
    terminator: str
    unicode_error_policy: str | None
    keep_file_open: bool
    debug: bool
    use_gzip: bool
    compress: CompressLike
    compress_delay: DurationLike
    max_age: DurationLike | None
    max_total_size: SizeLike | None
    batched: bool
    queue_size: int
    overflow: str
    watch_interval: float
    fsync: FsyncLike
    network_fs: bool | None
    header: HeaderLike

    def as_dict(self) -> dict[str, Any]:
        """The arguments by name, values as given (not copied)."""
        return dict(vars(self))


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


def _lock_timeout(value: DurationLike) -> float:
    """Seconds, a timedelta or ``"5 s"``, like every other duration."""
    return parse_duration(value, "lock_timeout")


def _fsync(value: FsyncLike) -> bool | float:
    """``fsync`` is True, False or an interval; ``1`` and ``0`` could mean either."""
    if type(value) is int and value in (0, 1):
        raise ValueError(
            f"fsync={value!r} is ambiguous: write fsync=True to sync each record, "
            f"fsync=False for no sync, or fsync={float(value)!r} (or '{value} s') for a "
            "background sync at most that many seconds after a write"
        )
    return parse_fsync(value)
