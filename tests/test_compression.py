"""Compression of rotated files, retention by count/age/size, and the modes of what they make.

Compression runs in a background thread, so while it may be running the tests look at
backups only by their uncompressed names (``_backups``): ``close()`` waits for it and
compresses whatever is left, and a test that needs compressed backups before the next
rotation closes the handler and opens a new one (a "session").  Retention is applied
under the writers' lock at each rotation, before the new backup is handed to the
compressor, so its effect is checked right after the rotating ``emit`` returns.  Nothing
here asserts a duration.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import importlib
import logging
import lzma
import multiprocessing
import os
import re
import shutil
import stat
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

import pytest

import mplog.backup_claims
import mplog.compression
import mplog.rotation
from conftest import T0, Clock
from mplog.archive import is_claimed
from mplog.compression import Compressor
from mplog.retention import Retention, Stored

# Child processes import their entry points by module name (spawn): put this
# directory on sys.path, which multiprocessing hands on to them.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
mp_workers = importlib.import_module("mp_workers")

BASE = "app.log"
LOCK = ".__app.lock"
DAY, HOUR = 24 * 60 * 60, 60 * 60
P0, P1 = "2024-01-10_13", "2024-01-10_14"  # hourly period names of T0 and T0 + 1 h
RECORD = 39  # bytes of every record written by _write() (text + newline)


def _zstd_decompress(data: bytes) -> bytes:
    zstd = mplog.compression._zstd_module()
    if hasattr(zstd, "ZstdFile"):  # Python 3.14's compression.zstd
        return zstd.decompress(data)  # type: ignore[no-any-return]
    return zstd.ZstdDecompressor().decompressobj().decompress(data)  # type: ignore[no-any-return]


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.decompress,
    ".gz2": gzip.decompress,  # the custom compressor below writes gzip
    ".bz2": bz2.decompress,
    ".xz": lzma.decompress,
    ".zst": _zstd_decompress,
}
_MAGIC = {".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ\x00"}


def _zstd_available() -> bool:
    try:
        mplog.compression._zstd_module()
    except ImportError:
        return False
    return True


ZSTD = _zstd_available()


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def no_umask() -> Iterator[None]:
    """Run with umask 0, so that a file created wider than requested would show it."""
    saved = os.umask(0)
    try:
        yield
    finally:
        os.umask(saved)


class Reporting:
    """Mixin: keep what goes to handleError (message and exception) instead of printing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reports: list[tuple[str, BaseException | None]] = []  # before: __init__ may report
        super().__init__(*args, **kwargs)

    def handleError(self, record: logging.LogRecord) -> None:
        self.reports.append((record.getMessage(), sys.exc_info()[1]))


class Handler(Reporting, mplog.ConcurrentRotatingFileHandler):
    pass


class TimedHandler(Reporting, mplog.ConcurrentTimedRotatingFileHandler):
    pass


def _record(msg: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": msg, "levelno": logging.INFO, "levelname": "INFO"})


def _text(number: int) -> str:
    """Record *number*: always RECORD bytes on disk."""
    return f"record {number:06d} " + "x" * (RECORD - 15)


def _write(handler: logging.Handler, numbers: Sequence[int] | range) -> None:
    for number in numbers:
        handler.emit(_record(_text(number)))


def _numbers(data: bytes) -> list[int]:
    """The record numbers in *data*, which must hold nothing but whole records."""
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == "", f"a record is cut short: {lines[-1]!r}"
    numbers = [int(line.split()[1]) for line in lines[:-1]]
    assert [_text(n) for n in numbers] == lines[:-1], "foreign bytes in a log file"
    return numbers


def _suffix_of(name: str) -> str:
    return next((s for s in _DECOMPRESS if name.endswith(s)), "")


def _read(path: Path) -> bytes:
    """The content of a log file, decompressed if its suffix says so."""
    suffix = _suffix_of(path.name)
    return _DECOMPRESS[suffix](path.read_bytes()) if suffix else path.read_bytes()


def _names(directory: Path) -> list[str]:
    """The directory's entries, the lock file left out."""
    return sorted(name for name in os.listdir(directory) if name != LOCK)


def _backups(directory: Path) -> list[str]:
    """The log's files by uncompressed name, hidden ones left out: what a test may check
    while the background compressor may be renaming app.log.1 to app.log.1.gz."""
    return sorted(
        {name.removesuffix(_suffix_of(name)) for name in _names(directory) if name[0] != "."}
    )


def _numbered(directory: Path, suffix: str) -> list[Path]:
    """The size-named backups, oldest first, then the active file; every backup must
    be compressed with *suffix*, numbered 1..n without a gap."""
    names = set(_names(directory)) - {BASE}
    pattern = re.compile(re.escape(BASE) + r"\.([1-9]\d*)" + re.escape(suffix))
    numbers = sorted(int(m.group(1)) for m in map(pattern.fullmatch, names) if m)
    assert len(numbers) == len(names), f"unexpected files: {sorted(names)}"
    assert numbers == list(range(1, len(numbers) + 1)), f"a gap in {numbers}"
    return [directory / f"{BASE}.{n}{suffix}" for n in reversed(numbers)] + [directory / BASE]


def _numbers_in(paths: Sequence[Path]) -> list[list[int]]:
    return [_numbers(_read(path)) for path in paths]


def _gzip_file(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.write_bytes(gzip.compress(data))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _plain_file(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _rotate_once(handler: logging.Handler, first: int) -> None:
    """Write two records into a fresh active file: the second rotates (maxBytes < 2 records)."""
    _write(handler, [first, first + 1])


def _temp_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if ".mplog-" in name]


@contextlib.contextmanager
def _claimed(path: Path) -> Iterator[None]:
    """Hold the claim another process's compressor would hold on *path*."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # releases the flock


def gzip2(path: str) -> str:
    """A custom compressor: gzip *path* into *path*.gz2, leaving *path* in place."""
    with open(path, "rb") as source, gzip.open(path + ".gz2", "wb") as target:
        shutil.copyfileobj(source, target)
    return path + ".gz2"


gzip2.suffix = ".gz2"  # type: ignore[attr-defined]


# -- codecs ----------------------------------------------------------------------------------


CODECS = [
    ("gzip", ".gz"),
    ("bz2", ".bz2"),
    ("xz", ".xz"),
    pytest.param(
        "zstd",
        ".zst",
        marks=pytest.mark.skipif(not ZSTD, reason="no zstd: Python < 3.14, no zstandard"),
    ),
]


@pytest.mark.parametrize(("codec", "suffix"), CODECS)
def test_every_backup_is_compressed_and_every_record_is_there_once(
    tmp_path: Path, codec: str, suffix: str
) -> None:
    """After close(), each backup exists only compressed with the codec's suffix (and really
    in its format), and the backups plus the active file hold every record once, in order."""
    handler = Handler(
        tmp_path / BASE, maxBytes=4 * RECORD, backupCount=50, compress=codec, compress_delay=0
    )
    try:
        _write(handler, range(60))
    finally:
        handler.close()
    files = _numbered(tmp_path, suffix)
    assert len(files) - 1 == 14  # 4 records per file: 15 files
    for backup in files[:-1]:
        if suffix in _MAGIC:
            assert backup.read_bytes().startswith(_MAGIC[suffix]), backup.name
    per_file = _numbers_in(files)
    assert [n for numbers in per_file for n in numbers] == list(range(60))
    assert all(len(numbers) == 4 for numbers in per_file)
    assert handler.reports == []
    assert _temp_files(tmp_path) == []


def test_zstd_without_a_backend_fails_at_construction_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without compression.zstd (3.14) or zstandard, compress='zstd' raises ImportError naming
    zstd and how to get it, before any file is created."""
    monkeypatch.setitem(sys.modules, "compression", None)  # `from compression import zstd` fails
    monkeypatch.setitem(sys.modules, "compression.zstd", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ImportError, match="zstd") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, compress="zstd")
    assert "zstandard" in str(info.value)
    assert os.listdir(tmp_path) == []


# -- options ---------------------------------------------------------------------------------


def test_use_gzip_is_compress_gzip(tmp_path: Path) -> None:
    """concurrent-log-handler's use_gzip=True gives the gzip compressor and .gz backups."""
    assert Compressor.parse(None, use_gzip=True) == Compressor.parse("gzip")
    assert Compressor.parse("gzip", use_gzip=True) == Compressor.parse("gzip")
    assert Compressor.parse(None) is None
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=3, use_gzip=True, compress_delay=0
    )
    try:
        assert handler.compressor is not None
        assert handler.compressor.name == "gzip"
        _write(handler, range(3))
    finally:
        handler.close()
    assert _numbers_in(_numbered(tmp_path, ".gz")) == [[0], [1], [2]]


def test_use_gzip_and_another_compress_disagree(tmp_path: Path) -> None:
    """use_gzip=True with compress='bz2' is refused, naming both, before any file exists."""
    with pytest.raises(ValueError, match=r"use_gzip=True") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, use_gzip=True, compress="bz2")
    assert "compress='bz2'" in str(info.value)
    assert os.listdir(tmp_path) == []


def _no_dot(path: str) -> str:
    return path + ".lz4"


_no_dot.suffix = "lz4"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("compress", "fragment"),
    [
        ("zip", "compress='zip'"),
        ("", "compress=''"),
        ("gz", "compress='gz'"),
        (3, "compress=3"),
        (b"gzip", "compress=b'gzip'"),
        (_no_dot, "suffix attribute"),
    ],
)
def test_bad_compress_values_are_refused_naming_them(
    tmp_path: Path, compress: Any, fragment: str
) -> None:
    """An unknown codec, a non-string or a callable with a malformed suffix: ValueError."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, compress=compress)
    assert os.listdir(tmp_path) == []


def test_codec_names_are_case_insensitive() -> None:
    """'GZIP' and 'Xz' name the built-in codecs (config files vary in case)."""
    assert Compressor.parse("GZIP") == Compressor.parse("gzip")
    compressor = Compressor.parse("Xz")
    assert compressor is not None
    assert (compressor.name, compressor.suffix) == ("xz", ".xz")


def test_a_callable_compressor_names_backups_with_its_suffix(tmp_path: Path) -> None:
    """A callable's output becomes <backup><suffix>; its compressed backups shift with their
    number in later sessions and count towards backupCount."""
    number = 0
    for _session in range(5):
        handler = Handler(
            tmp_path / BASE, maxBytes=RECORD, backupCount=3, compress=gzip2, compress_delay=0
        )
        try:
            assert handler.compressor is not None
            assert handler.compressor.suffix == ".gz2"
            _rotate_once(handler, number)
            number += 2
        finally:
            handler.close()
        assert handler.reports == []
    files = _numbered(tmp_path, ".gz2")
    assert _numbers_in(files) == [[6], [7], [8], [9]]
    assert _temp_files(tmp_path) == []


def test_a_callable_returning_a_wrong_path_is_reported_and_the_backup_kept(
    tmp_path: Path,
) -> None:
    """A callable that returns something other than its input plus a suffix: the failure goes
    to handleError once, the backups stay uncompressed and intact, nothing is left behind."""
    calls: list[str] = []

    def in_place(path: str) -> str:
        calls.append(path)
        return path  # not path + suffix

    in_place.suffix = ".x"  # type: ignore[attr-defined]
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=in_place, compress_delay=0
    )
    try:
        _write(handler, range(3))
    finally:
        handler.close()
    assert calls, "the callable was never called"
    assert all(os.path.basename(path).startswith(f".{BASE}.mplog-") for path in calls)
    assert len(handler.reports) == 1
    message, error = handler.reports[0]
    assert isinstance(error, ValueError)
    assert "returned" in message
    assert _names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2"]
    assert _numbers_in(_numbered(tmp_path, "")) == [[0], [1], [2]]


def test_a_wrong_path_returned_by_a_callable_is_not_deleted(tmp_path: Path) -> None:
    """A callable that returns an unrelated existing file does not get that file deleted."""
    precious = _plain_file(tmp_path / "precious.txt", b"keep me")

    def wrong(path: str) -> str:
        return str(precious)

    wrong.suffix = ".x"  # type: ignore[attr-defined]
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=wrong, compress_delay=0
    )
    try:
        _write(handler, range(2))
    finally:
        handler.close()
    assert len(handler.reports) == 1
    assert precious.read_bytes() == b"keep me"


def test_a_callable_returning_a_wrong_path_leaves_no_output_behind(tmp_path: Path) -> None:
    """The callable wrote its output but returned its input: no hidden file is left."""

    def forgot_suffix(path: str) -> str:
        gzip2(path)
        return path

    forgot_suffix.suffix = ".gz2"  # type: ignore[attr-defined]
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=forgot_suffix, compress_delay=0
    )
    try:
        _write(handler, range(3))
    finally:
        handler.close()
    assert len(handler.reports) == 1
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("suffix", [None, "", "lz4", ".", 4])
def test_a_callable_needs_a_suffix_attribute(tmp_path: Path, suffix: object) -> None:
    """Without a valid suffix attribute, processes that have not compressed anything yet could
    not recognize (shift, prune) the compressed backups: refused at construction, naming it."""

    def lz4ish(path: str) -> str:
        return gzip2(path)

    if suffix is not None:
        lz4ish.suffix = suffix  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="suffix attribute"):
        Handler(tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=lz4ish, compress_delay=0)
    assert not (tmp_path / BASE).exists()


# -- size naming -----------------------------------------------------------------------------


def test_size_naming_shifts_compressed_backups_in_order(tmp_path: Path) -> None:
    """Session after session (each one compressing on close), .1.gz is the newest, the order
    survives every shift, and backupCount=3 counts the compressed backups: the oldest go."""
    number = 0
    for session in range(6):
        handler = Handler(
            tmp_path / BASE, maxBytes=2 * RECORD, backupCount=3, compress="gzip", compress_delay=0
        )
        try:
            _write(handler, range(number, number + 2 if session else 3))
            number += 2 if session else 3
        finally:
            handler.close()
        assert handler.reports == []
        files = _numbered(tmp_path, ".gz")
        assert len(files) == min(session + 1, 3) + 1
        contents = _numbers_in(files)
        flat = [n for numbers in contents for n in numbers]
        assert flat == list(range(number - len(flat), number)), "not the newest, in order"
        assert all(len(numbers) == 2 for numbers in contents[:-1])


def test_mixed_forms_shift_together_and_the_oldest_goes_in_every_form(tmp_path: Path) -> None:
    """.1.gz and a plain .2 (an old backup not compressed yet) shift as one sequence; with
    backupCount=3, the next rotation deletes the oldest, compressed or not."""
    _plain_file(tmp_path / f"{BASE}.2", _text(0).encode() + b"\n")
    _gzip_file(tmp_path / f"{BASE}.1.gz", _text(1).encode() + b"\n")
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=3, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(_record(_text(2)))
        handler.emit(_record(_text(3)))  # rotates: .2 -> .3, .1.gz -> .2.gz, active -> .1
        assert _backups(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    assert _numbers_in(_numbered(tmp_path, ".gz")) == [[0], [1], [2], [3]]
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=3, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(_record(_text(4)))  # rotates: .3.gz (record 0) goes
    finally:
        handler.close()
    assert _numbers_in(_numbered(tmp_path, ".gz")) == [[1], [2], [3], [4]]


# -- time naming -----------------------------------------------------------------------------


def _touch_active(directory: Path, clock: Clock) -> None:
    """Give the active file the fake clock's mtime (a new handler reads it)."""
    active = directory / BASE
    if active.exists():
        os.utime(active, (clock.now, clock.now))


def test_time_naming_counters_continue_after_compressed_backups(
    tmp_path: Path, clock: Clock
) -> None:
    """An existing app.log.<period>.gz makes the next backup of that period .<period>.1, later
    ones continue after the compressed ones; backupCount=3 keeps the 3 newest, all forms."""
    _gzip_file(tmp_path / f"{BASE}.{P0}.gz", b"older\n")

    def session(numbers: Sequence[int], at: float) -> list[tuple[str, Any]]:
        clock.now = at
        handler = TimedHandler(
            tmp_path / BASE,
            "H",
            utc=True,
            backupCount=3,
            maxBytes=RECORD,
            compress="gzip",
            compress_delay=0,
        )
        try:
            _write(handler, numbers)
        finally:
            handler.close()
        _touch_active(tmp_path, clock)  # the next handler reads when it was last written
        return handler.reports

    assert session([0, 1], T0) == []  # record 0 goes to app.log.<P0>.1
    assert _names(tmp_path) == [BASE, f"{BASE}.{P0}.1.gz", f"{BASE}.{P0}.gz"]
    assert session([2], T0 + 60) == []  # record 1 goes to .2, after the compressed .1
    assert _names(tmp_path) == [BASE, f"{BASE}.{P0}.1.gz", f"{BASE}.{P0}.2.gz", f"{BASE}.{P0}.gz"]
    # An hour after the last write, a time rotation: record 2 is still of P0 (.3), and
    # backupCount=3 drops .gz.  Record 3 then rotates by size into P1's first name.
    assert session([3, 4], T0 + 60 + HOUR + 5) == []
    expected = [f"{BASE}.{P0}.2.gz", f"{BASE}.{P0}.3.gz", f"{BASE}.{P1}.gz"]
    assert _names(tmp_path) == sorted([BASE, *expected])
    assert _numbers_in([tmp_path / name for name in [*expected, BASE]]) == [[1], [2], [3], [4]]


def test_time_naming_in_one_session_compresses_every_backup(tmp_path: Path, clock: Clock) -> None:
    """Size and time rotations in one handler's life: after close, every backup is compressed,
    named for its period with counters in rotation order, and holds its records in order."""
    handler = TimedHandler(
        tmp_path / BASE,
        "H",
        utc=True,
        backupCount=0,
        maxBytes=3 * RECORD,
        compress="gzip",
        compress_delay=0,
    )
    try:
        _write(handler, range(7))  # P0: 3 + 3 + 1 records
        clock.now = T0 + HOUR
        _write(handler, range(7, 12))  # record 7 rotates by time; then 3 + 2 in P1
    finally:
        handler.close()
    assert handler.reports == []
    expected = [f"{BASE}.{P0}.gz", f"{BASE}.{P0}.1.gz", f"{BASE}.{P0}.2.gz", f"{BASE}.{P1}.gz"]
    assert _names(tmp_path) == sorted([BASE, *expected])
    files = [tmp_path / name for name in [*expected, BASE]]
    assert _numbers_in(files) == [[0, 1, 2], [3, 4, 5], [6], [7, 8, 9], [10, 11]]


# -- retention: the pure rules ------------------------------------------------------------


def _stored(*specs: tuple[int, float]) -> list[Stored]:
    """Backups oldest first, from (size, mtime) pairs; named b0, b1, ..."""
    return [Stored((f"b{i}",), size, mtime) for i, (size, mtime) in enumerate(specs)]


def _names_of(backups: Sequence[Stored]) -> list[str]:
    return [backup.paths[0] for backup in backups]


def test_retention_by_count_deletes_the_oldest_first() -> None:
    """count keeps the newest *count* backups and returns the rest oldest first."""
    backups = _stored(*[(10, 100.0 + i) for i in range(5)])
    assert _names_of(Retention(count=2).expired(backups, 1000.0)) == ["b0", "b1", "b2"]
    assert Retention(count=5).expired(backups, 1000.0) == []
    assert Retention(count=9).expired(backups, 1000.0) == []
    assert Retention().expired(backups, 1000.0) == []  # no rule: keep everything
    assert Retention(count=1).expired([], 1000.0) == []


def test_retention_by_age() -> None:
    """max_age deletes backups last written more than max_age ago (exactly max_age is kept),
    and with them every older one, even if its mtime is newer."""
    rules = Retention(max_age=100.0)
    backups = _stored((1, 800.0), (1, 899.0), (1, 900.0), (1, 990.0))
    assert _names_of(rules.expired(backups, 1000.0)) == ["b0", "b1"]
    assert rules.expired(backups, 900.0) == []
    # b1 is the newest too-old one: b0, older by position, goes although its mtime is recent
    backups = _stored((1, 995.0), (1, 850.0), (1, 990.0))
    assert _names_of(rules.expired(backups, 1000.0)) == ["b0", "b1"]


def test_retention_by_total_size() -> None:
    """max_total_size keeps the newest backups that fit together (exactly fitting is kept)."""
    backups = _stored((10, 1.0), (10, 2.0), (10, 3.0), (10, 4.0))
    assert _names_of(Retention(max_total_size=25).expired(backups, 10.0)) == ["b0", "b1"]
    assert _names_of(Retention(max_total_size=30).expired(backups, 10.0)) == ["b0"]
    assert Retention(max_total_size=40).expired(backups, 10.0) == []
    # a small older one does not slip in after a big one went over the limit
    backups = _stored((1, 1.0), (50, 2.0), (10, 3.0))
    assert _names_of(Retention(max_total_size=20).expired(backups, 10.0)) == ["b0", "b1"]


def test_retention_newest_backup_alone_over_the_size_limit_goes() -> None:
    """A newest backup bigger than max_total_size on its own is deleted too: none is kept."""
    backups = _stored((5, 1.0), (100, 2.0))
    assert _names_of(Retention(max_total_size=50).expired(backups, 10.0)) == ["b0", "b1"]


def test_retention_rules_combine_any_rule_deletes() -> None:
    """count, max_age and max_total_size together: a backup goes as soon as one rule says so."""
    backups = _stored((10, 100.0), (10, 500.0), (10, 900.0), (10, 950.0), (10, 990.0))
    now = 1000.0
    assert len(Retention(4, 1000.0, 1000).expired(backups, now)) == 1  # count
    assert len(Retention(9, 150.0, 1000).expired(backups, now)) == 2  # age
    assert len(Retention(9, 1000.0, 20).expired(backups, now)) == 3  # size
    assert _names_of(Retention(4, 150.0, 25).expired(backups, now)) == ["b0", "b1", "b2"]
    assert Retention(9, 1000.0, 1000).expired(backups, now) == []


def test_retention_parse_accepts_units() -> None:
    """max_age and max_total_size accept numbers, units and timedelta."""
    import datetime

    rules = Retention.parse(3, "7 days", "1 GB")
    assert rules == Retention(3, 7 * DAY, 10**9)
    assert rules.by_age_or_size
    assert Retention.parse(max_age=datetime.timedelta(hours=2)).max_age == 2 * HOUR
    assert Retention.parse(max_total_size="512KiB").max_total_size == 512 * 1024
    assert not Retention.parse(5).by_age_or_size


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_age": -1}, "max_age=-1"),
        ({"max_age": 0}, "max_age=0"),
        ({"max_age": "0 s"}, "max_age='0 s'"),
        ({"max_age": "soon"}, "max_age='soon'"),
        ({"max_age": "3 parsecs"}, "max_age='3 parsecs'"),
        ({"max_total_size": -5}, "max_total_size=-5"),
        ({"max_total_size": 0}, "max_total_size=0"),
        ({"max_total_size": "lots"}, "max_total_size='lots'"),
        ({"max_total_size": "-1 MB"}, "max_total_size='-1 MB'"),
    ],
)
def test_retention_parse_errors_name_the_value(kwargs: dict[str, Any], fragment: str) -> None:
    """Negative, zero and unparsable values are refused with ValueError quoting them."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Retention.parse(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maxBytes": 100, "max_age": "1 day"},  # backupCount=0
        {"maxBytes": 100, "backupCount": 0, "max_total_size": "1 MB"},
        {"backupCount": 3, "max_age": "1 day"},  # maxBytes=0
    ],
)
def test_retention_with_size_only_rotation_needs_numbered_backups(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    """max_age/max_total_size with size-only rotation need maxBytes and backupCount > 0."""
    with pytest.raises(ValueError, match="backupCount > 0") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, **kwargs)
    option = "max_age" if "max_age" in kwargs else "max_total_size"
    assert f"{option}={kwargs[option]!r}" in str(info.value)
    assert os.listdir(tmp_path) == []
    # with a time schedule, backupCount=0 (keep all by count) is fine
    mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, when="H", max_age="1 day").close()


# -- retention: files ------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_max_age_deletes_old_backups_compressed_or_not(
    tmp_path: Path, compress: str | None
) -> None:
    """At a rotation, backups last written more than max_age ago go, in every form."""
    now, old = time.time(), time.time() - 2 * HOUR
    _plain_file(tmp_path / f"{BASE}.1", _text(3).encode() + b"\n", now)
    _gzip_file(tmp_path / f"{BASE}.2.gz", _text(2).encode() + b"\n", now)
    _plain_file(tmp_path / f"{BASE}.3", _text(1).encode() + b"\n", old)
    _gzip_file(tmp_path / f"{BASE}.4.gz", _text(0).encode() + b"\n", old)
    handler = Handler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=10,
        max_age="1 hour",
        compress=compress,
        compress_delay=0,
    )
    try:
        _rotate_once(handler, 4)  # shifts to .2 .3.gz .4 .5.gz; .4 and .5.gz are too old
        assert _backups(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    if compress:
        assert _numbers_in(_numbered(tmp_path, ".gz")) == [[2], [3], [4], [5]]
    else:
        assert _names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3.gz"]
    assert handler.reports == []


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_max_total_size_keeps_the_newest_backups_that_fit(
    tmp_path: Path, compress: str | None
) -> None:
    """At a rotation, the newest backups whose sizes on disk add up to max_total_size stay;
    the older ones go, compressed or not."""
    sizes = {}
    for number, (maker, name) in enumerate(
        [(_gzip_file, "4.gz"), (_plain_file, "3"), (_gzip_file, "2.gz"), (_plain_file, "1")]
    ):
        path = maker(tmp_path / f"{BASE}.{name}", (_text(number) + "\n").encode() * 20)
        sizes[name] = path.stat().st_size
    # after the shift: .1 (the active file, 1 record), .2, .3.gz, .4, .5.gz
    limit = RECORD + sizes["1"] + sizes["2.gz"] + sizes["3"] // 2
    handler = Handler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=10,
        max_total_size=limit,
        compress=compress,
        compress_delay=0,
    )
    try:
        _rotate_once(handler, 4)
        assert _backups(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    assert handler.reports == []
    kept = [f"{BASE}.3.gz", f"{BASE}.2", f"{BASE}.1", BASE]
    if compress:
        kept = [f"{BASE}.3.gz", f"{BASE}.2.gz", f"{BASE}.1.gz", BASE]
    assert _names(tmp_path) == sorted(kept)
    assert _numbers_in([tmp_path / name for name in kept]) == [[2] * 20, [3] * 20, [4], [5]]


@pytest.mark.parametrize("timed", [False, True], ids=["size-names", "time-names"])
def test_retention_never_touches_other_logs_files_nor_the_active_file(
    tmp_path: Path, clock: Clock, timed: bool
) -> None:
    """With rules that delete every backup, files of other logs sharing the name's prefix, look-
    alikes and the active file stay."""
    old = T0 - 30 * DAY
    foreign = [
        f"{BASE}.b.1",
        f"{BASE}.1.bak",
        f"{BASE}.1.gz.bak",
        "other.log.1.gz",
        f"{BASE}.b.{P0}",
        f"{BASE}.{P0}.bak",
        f"{BASE}.b.{P0}.gz",
        f"other.log.{P0}.gz",
        f"x{BASE}.{P0}",
    ]
    for name in foreign:
        _plain_file(tmp_path / name, b"not ours\n" * 100, old)
    own = f"{BASE}.{P0}.gz" if timed else f"{BASE}.1.gz"
    _gzip_file(tmp_path / own, b"old backup\n", old)
    options: dict[str, Any] = {
        "max_age": "1 hour",
        "max_total_size": 1,
        "compress": "gzip",
        "compress_delay": 0,
    }
    if timed:
        handler = Handler(tmp_path / BASE, maxBytes=RECORD, when="H", utc=True, **options)
    else:
        handler = Handler(tmp_path / BASE, maxBytes=RECORD, backupCount=5, **options)
    try:
        assert handler.getFilesToDelete() == [str(tmp_path / own)]
        _rotate_once(handler, 0)
        # the new backup alone is over max_total_size: it went too
        assert _names(tmp_path) == sorted([BASE, *foreign])
    finally:
        handler.close()
    assert _names(tmp_path) == sorted([BASE, *foreign])
    assert _numbers((tmp_path / BASE).read_bytes()) == [1]
    for name in foreign:
        assert (tmp_path / name).read_bytes() == b"not ours\n" * 100


def _namer(default: str) -> str:
    """A stdlib-style namer: app.log.3 -> app.3.log, app.log.<period>.1 -> app.<period>.1.log."""
    directory, name = os.path.split(default)
    return os.path.join(directory, name.replace("app.log.", "app.", 1) + ".log")


@pytest.mark.parametrize("timed", [False, True], ids=["size-names", "time-names"])
def test_backups_named_by_a_custom_namer_are_compressed_and_pruned(
    tmp_path: Path, clock: Clock, timed: bool
) -> None:
    """The namer's names get the suffix (app.3.log.gz) and retention finds and deletes them."""

    def open_handler() -> Handler:
        _touch_active(tmp_path, clock)
        extra: dict[str, Any] = {"when": "H", "utc": True} if timed else {"backupCount": 9}
        handler = Handler(
            tmp_path / BASE,
            maxBytes=RECORD,
            max_age="1 hour",
            compress="gzip",
            compress_delay=0,
            **extra,
        )
        handler.namer = _namer
        return handler

    handler = open_handler()
    try:
        _write(handler, range(4))
    finally:
        handler.close()
    if timed:
        names = [f"app.{P0}.log.gz", f"app.{P0}.1.log.gz", f"app.{P0}.2.log.gz"]
    else:
        names = ["app.3.log.gz", "app.2.log.gz", "app.1.log.gz"]
    assert _names(tmp_path) == sorted([BASE, *names])
    assert _numbers_in([tmp_path / name for name in [*names, BASE]]) == [[0], [1], [2], [3]]
    for name in names:
        os.utime(tmp_path / name, (T0 - 2 * HOUR, T0 - 2 * HOUR))
    os.utime(tmp_path / BASE, (T0, T0))
    handler = open_handler()
    try:
        # time.time() is frozen at T0: T0 - 2 h is too old, whatever the real date is
        assert sorted(handler.getFilesToDelete()) == sorted(str(tmp_path / n) for n in names)
        _write(handler, [4])  # rotates record 3 out; the three old backups go
    finally:
        handler.close()
    new = f"app.{P0}.3.log.gz" if timed else "app.1.log.gz"
    assert _names(tmp_path) == sorted([BASE, new])
    assert _numbers_in([tmp_path / new, tmp_path / BASE]) == [[3], [4]]


def test_get_files_to_delete_lists_what_the_rules_delete_oldest_first(tmp_path: Path) -> None:
    """getFilesToDelete() names every file of the expired backups (both forms of one left by
    an interrupted compression), oldest first; it deletes nothing."""
    now, old = time.time(), time.time() - 2 * DAY
    _plain_file(tmp_path / f"{BASE}.1", b"new\n", now)
    _gzip_file(tmp_path / f"{BASE}.2.gz", b"old\n", old)
    _plain_file(tmp_path / f"{BASE}.3", b"older\n", old)
    _gzip_file(tmp_path / f"{BASE}.3.gz", b"older\n", old)
    _gzip_file(tmp_path / f"{BASE}.7.gz", b"oldest, beyond backupCount\n", old)
    handler = Handler(tmp_path / BASE, maxBytes=100, backupCount=5, max_age="1 day", delay=True)
    try:
        expected = [f"{BASE}.3", f"{BASE}.3.gz", f"{BASE}.2.gz"]
        assert handler.getFilesToDelete() == [str(tmp_path / name) for name in expected]
        os.utime(tmp_path / f"{BASE}.2.gz", (now, now))
        assert handler.getFilesToDelete() == [str(tmp_path / name) for name in expected[:2]]
        assert len(_names(tmp_path)) == 5
    finally:
        handler.close()


def test_get_files_to_delete_with_time_names_counts_groups(tmp_path: Path, clock: Clock) -> None:
    """Time naming: backupCount counts a backup once whatever its forms; beyond it, oldest go."""
    for name in [f"{P0}", f"{P0}.1", f"{P0}.1.gz", f"{P0}.2.gz", f"{P1}"]:
        _plain_file(tmp_path / f"{BASE}.{name}", b"x\n", T0)
    handler = Handler(tmp_path / BASE, when="H", utc=True, backupCount=2, delay=True)
    try:
        expected = [f"{BASE}.{P0}", f"{BASE}.{P0}.1", f"{BASE}.{P0}.1.gz"]
        assert handler.getFilesToDelete() == [str(tmp_path / name) for name in expected]
    finally:
        handler.close()


# -- claims ----------------------------------------------------------------------------------


def test_a_claimed_backup_survives_retention_until_released(tmp_path: Path) -> None:
    """A backup another process is compressing (it holds flock on it) is not deleted by max_age
    while claimed, even as it shifts; after release, the next rotation deletes it."""
    old = time.time() - 2 * HOUR
    for number in (1, 2, 3):
        _plain_file(tmp_path / f"{BASE}.{number}", f"old {number}\n".encode(), old)
    held = tmp_path / f"{BASE}.3"
    inode = held.stat().st_ino
    handler = Handler(tmp_path / BASE, maxBytes=RECORD, backupCount=10, max_age="1 hour")
    try:
        with _claimed(held):
            assert is_claimed(str(held))
            assert not is_claimed(str(tmp_path / f"{BASE}.2"))
            _rotate_once(handler, 0)  # .3 -> .4, claimed: kept; the old .2 and .3 go
            assert _names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.4"]
            assert (tmp_path / f"{BASE}.4").stat().st_ino == inode
            handler.emit(_record(_text(2)))  # another rotation while still claimed
            assert (tmp_path / f"{BASE}.4").stat().st_ino == inode
        assert not is_claimed(str(tmp_path / f"{BASE}.4"))
        handler.emit(_record(_text(3)))
        assert not (tmp_path / f"{BASE}.4").exists()
        assert _names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    assert handler.reports == []


def test_a_claimed_backup_is_left_to_its_claimant_by_the_compressor(tmp_path: Path) -> None:
    """The archiver skips a backup someone else is compressing; a later close compresses it."""
    _plain_file(tmp_path / f"{BASE}.1", _text(1).encode() + b"\n")
    _plain_file(tmp_path / f"{BASE}.2", _text(0).encode() + b"\n")
    with _claimed(tmp_path / f"{BASE}.2"):
        handler = Handler(
            tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
        )
        handler.close()  # sweeps: .1 compressed, .2 skipped
        assert _names(tmp_path) == [BASE, f"{BASE}.1.gz", f"{BASE}.2"]
    assert handler.reports == []
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    handler.close()
    assert _names(tmp_path) == [BASE, f"{BASE}.1.gz", f"{BASE}.2.gz"]
    assert _numbers_in(_numbered(tmp_path, ".gz")[:-1]) == [[0], [1]]


def test_a_backup_shifted_out_while_being_compressed_is_not_committed(tmp_path: Path) -> None:
    """backupCount=1: the rotation deletes .1 while the compressor is working on it.  Its
    compressed copy is dropped, not committed under the name the new .1 now has."""
    entered, release = threading.Event(), threading.Event()

    def slow(path: str) -> str:
        if not entered.is_set():  # only the first call waits
            entered.set()
            assert release.wait(30), "the test never released the compressor"
        return gzip2(path)

    slow.suffix = ".gz2"  # type: ignore[attr-defined]
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=1, compress=slow, compress_delay=0
    )
    try:
        _write(handler, [0, 1])  # record 0 -> .1, being compressed by the background thread
        assert entered.wait(30), "the compressor never started"
        handler.emit(_record(_text(2)))  # record 1 -> .1; record 0's file is deleted
        release.set()
    finally:
        release.set()
        handler.close()
    assert handler.reports == []
    assert _numbers_in(_numbered(tmp_path, ".gz2")) == [[1], [2]]
    assert _temp_files(tmp_path) == []


def test_an_interrupted_commit_and_stale_temp_files_are_cleaned_up(tmp_path: Path) -> None:
    """A crash between the commit's rename and remove leaves .2 and an equal .2.gz: the plain
    one is removed.  An unlocked temporary file of a dead compression is removed.  A .3 whose
    .3.gz differs is left alone and reported."""
    data = _text(0).encode() + b"\n"
    _plain_file(tmp_path / f"{BASE}.2", data)
    _gzip_file(tmp_path / f"{BASE}.2.gz", data)
    _plain_file(tmp_path / f"{BASE}.3", b"one thing\n")
    _gzip_file(tmp_path / f"{BASE}.3.gz", b"another\n")
    _plain_file(tmp_path / f".{BASE}.mplog-999999999-0badcafe.tmp", b"half")
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    handler.close()
    assert _names(tmp_path) == [BASE, f"{BASE}.2.gz", f"{BASE}.3", f"{BASE}.3.gz"]
    assert [type(error) for _message, error in handler.reports] == [FileExistsError]
    assert (tmp_path / f"{BASE}.3").read_bytes() == b"one thing\n"


def test_one_backup_that_cannot_be_compressed_does_not_block_the_older_ones(
    tmp_path: Path,
) -> None:
    """A conflict on .1 (its .1.gz differs) is reported and .1 left alone; the sweep goes on
    and the older .2 and .3 are still compressed."""
    _plain_file(tmp_path / f"{BASE}.1", b"one thing\n")
    _gzip_file(tmp_path / f"{BASE}.1.gz", b"another\n")
    _plain_file(tmp_path / f"{BASE}.2", _text(1).encode() + b"\n")
    _plain_file(tmp_path / f"{BASE}.3", _text(0).encode() + b"\n")
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    handler.close()
    assert [type(error) for _message, error in handler.reports] == [FileExistsError]
    assert _names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.1.gz", f"{BASE}.2.gz", f"{BASE}.3.gz"]


def test_a_compressed_backup_keeps_its_sources_mtime_for_retention(tmp_path: Path) -> None:
    """The .gz gets the time its source was last written (not the time of compression), so
    max_age ages it from its last record."""
    old = time.time() - 3 * DAY
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(_record(_text(0)))
        os.utime(tmp_path / BASE, (old, old))
        handler.emit(_record(_text(1)))  # rotates the old file to .1
    finally:
        handler.close()
    assert (tmp_path / f"{BASE}.1.gz").stat().st_mtime == pytest.approx(old, abs=1e-3)
    handler = Handler(tmp_path / BASE, maxBytes=RECORD, backupCount=5, max_age="2 days")
    try:
        assert handler.getFilesToDelete() == [str(tmp_path / f"{BASE}.1.gz")]
    finally:
        handler.close()


# -- several processes -----------------------------------------------------------------------


_framed = mp_workers.framed


def _time_named(directory: Path) -> list[Path]:
    """Time-named backups (all .gz), in rotation order, then the active file."""
    pattern = re.compile(re.escape(BASE) + r"\.(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)(?:\.(\d+))?\.gz")
    keyed = []
    for name in set(_names(directory)) - {BASE}:
        match = pattern.fullmatch(name)
        assert match, f"unexpected file {name!r}"
        keyed.append(((match.group(1), int(match.group(2) or 0)), directory / name))
    by_period: dict[str, list[int]] = defaultdict(list)
    for (period, counter), _path in sorted(keyed):
        by_period[period].append(counter)
    for period, counters in by_period.items():
        assert counters == list(range(len(counters))), f"{period}: counters {counters}"
    return [path for _key, path in sorted(keyed)] + [directory / BASE]


def _run(ctx: Any, arglists: Sequence[tuple[Any, ...]]) -> None:
    """Run mp_workers.fixed_worker once per argument tuple, released together."""
    barrier = ctx.Barrier(len(arglists) + 1)
    processes = [
        ctx.Process(target=mp_workers.fixed_worker, args=(*args, barrier), daemon=True)
        for args in arglists
    ]
    try:
        for process in processes:
            process.start()
        barrier.wait(60)
        for process in processes:
            process.join(90)
    finally:
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.kill()
                process.join(5)
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork and spawn scenarios (POSIX)")
@pytest.mark.parametrize(
    ("method", "batched", "when"),
    [
        ("fork", False, None),
        ("spawn", False, None),
        ("fork", True, None),
        ("spawn", True, None),
        ("fork", False, "S"),
    ],
    ids=["fork", "spawn", "fork-batched", "spawn-batched", "fork-time-names"],
)
def test_processes_leave_every_backup_compressed_and_every_record_once(
    tmp_path: Path, method: str, batched: bool, when: str | None
) -> None:
    """4 processes, maxBytes=4096, gzip: once they have closed their handlers no backup is
    uncompressed, no temporary file is left, and the files hold each (worker, seq) exactly
    once, in per-worker order."""
    workers, count = 4, 2500
    kwargs: dict[str, Any] = {
        "maxBytes": 4096,
        "compress": "gzip",
        "compress_delay": 0,
        "batched": batched,
    }
    if when is None:
        kwargs["backupCount"] = 1000  # keep all (~200 are made): nothing may be lost
    else:
        kwargs.update(when=when, backupCount=0, utc=True)
    ctx = multiprocessing.get_context(method)
    _run(ctx, [(str(tmp_path / BASE), kwargs, w, count, 60) for w in range(workers)])
    assert _temp_files(tmp_path) == []
    files = _numbered(tmp_path, ".gz") if when is None else _time_named(tmp_path)
    assert len(files) > 100  # many rotations, many compressions racing them
    seqs: dict[int, list[int]] = defaultdict(list)
    for path in files:
        for worker, seq in _framed(_read(path), path.name):
            seqs[worker].append(seq)
    assert sorted(seqs) == list(range(workers))
    for worker, got in seqs.items():
        assert got == list(range(count)), f"worker {worker}: lost, doubled or out of order"


# -- permissions -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("no_umask")
@pytest.mark.parametrize(
    ("option", "mode"),
    [
        ({"chmod": 0o640}, 0o640),
        ({"umask": 0o027}, 0o640),
        ({"chmod": "0640"}, 0o640),
        ({"chmod": 0o400}, 0o400),
    ],
    ids=["chmod", "umask", "str", "read-only"],
)
def test_every_file_made_gets_the_requested_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: dict[str, Any], mode: int
) -> None:
    """chmod=0o640 (or umask=0o027): the active log, the lock file and every compressed
    backup are 0o640.  The temporary archive is created exclusively with a mode no wider
    than the requested one nor than 0o600, and has the requested mode while written."""
    created: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy_open(path: Any, flags: int, open_mode: int = 0o777, **kwargs: Any) -> int:
        if ".mplog-" in os.fspath(path):
            created.append((os.fspath(path), flags, open_mode))
        return real_open(path, flags, open_mode, **kwargs)

    modes_while_writing: list[int] = []
    real_compress_fd = Compressor.compress_fd

    def spy_compress_fd(self: Compressor, source: int, target: int, mtime: float) -> None:
        modes_while_writing.append(stat.S_IMODE(os.fstat(target).st_mode))
        real_compress_fd(self, source, target, mtime)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(Compressor, "compress_fd", spy_compress_fd)
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0, **option
    )
    try:
        _write(handler, range(4))
    finally:
        handler.close()
    monkeypatch.undo()
    assert handler.reports == []
    files = _numbered(tmp_path, ".gz")
    assert {path.name: _mode(path) for path in [*files, tmp_path / LOCK]} == {
        path.name: mode for path in [*files, tmp_path / LOCK]
    }
    temp_creations = [c for c in created if c[1] & os.O_CREAT]
    assert len(temp_creations) == 3
    for path, flags, created_mode in temp_creations:
        assert created_mode & ~mode == 0, f"{path}: created {created_mode:#o}, asked {mode:#o}"
        assert created_mode & ~0o600 == 0, f"{path}: created {created_mode:#o}"
        assert flags & os.O_EXCL, path
    assert modes_while_writing == [mode] * 3


@pytest.mark.usefixtures("no_umask")
def test_without_a_mode_option_a_compressed_backup_keeps_its_sources_mode(tmp_path: Path) -> None:
    """No chmod/umask: the .gz gets the mode of the file it compresses (0o604 here)."""
    handler = Handler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(_record(_text(0)))
        os.chmod(tmp_path / BASE, 0o604)
        handler.emit(_record(_text(1)))  # rotates the 0o604 file to .1
        handler.emit(_record(_text(2)))  # rotates the new file (process default mode)
    finally:
        handler.close()
    assert _mode(tmp_path / f"{BASE}.2.gz") == 0o604
    assert _mode(tmp_path / f"{BASE}.1.gz") == 0o666  # the default, with umask 0
    assert _numbers_in(_numbered(tmp_path, ".gz")) == [[0], [1], [2]]


@pytest.mark.usefixtures("no_umask")
def test_a_callable_compressors_output_gets_the_requested_mode(tmp_path: Path) -> None:
    """chmod=0o640 applies to a callable's output too, whatever mode the callable gave it."""

    def loose(path: str) -> str:
        out = gzip2(path)
        os.chmod(out, 0o666)
        return out

    loose.suffix = ".gz2"  # type: ignore[attr-defined]
    handler = Handler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=5,
        compress=loose,
        compress_delay=0,
        chmod=0o640,
    )
    try:
        _write(handler, range(3))
    finally:
        handler.close()
    files = _numbered(tmp_path, ".gz2")
    assert [_mode(path) for path in files] == [0o640] * 3
    assert _numbers_in(files) == [[0], [1], [2]]


def test_a_failed_chown_is_reported_once_and_logging_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """owner= that this process may not give: one report naming the owner and a path; every
    file is still made (lock, log, compressed backups) and every record written."""

    def refuse(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    monkeypatch.setattr(os, "chown", lambda *args, **kwargs: refuse(-1, 0, 0))
    owner = (os.getuid(), os.getgid())
    handler = Handler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=5,
        compress="gzip",
        compress_delay=0,
        owner=owner,
    )
    try:
        _write(handler, range(5))
    finally:
        handler.close()
    assert len(handler.reports) == 1, handler.reports
    message, error = handler.reports[0]
    assert isinstance(error, PermissionError)
    assert "owner" in message
    assert str(owner) in message
    assert str(tmp_path) in message
    assert (tmp_path / LOCK).exists()
    assert _numbers_in(_numbered(tmp_path, ".gz")) == [[0], [1], [2], [3], [4]]


# -- setup_logging ---------------------------------------------------------------------------


def test_setup_logging_wires_compression_and_retention(tmp_path: Path) -> None:
    """setup_logging(compress='gzip', max_age='7 days'): the handler compresses with gzip and
    retention deletes backups older than 7 days."""
    path = tmp_path / BASE
    handler = mplog.setup_logging(
        path, max_bytes=200, compress="gzip", compress_delay=0, max_age="7 days"
    )
    assert handler is not None
    assert handler.compressor is not None
    assert handler.compressor.name == "gzip"
    assert handler.backupCount == 5
    logger = logging.getLogger("mplog.tests.compression")
    for number in range(12):
        logger.info("message %03d", number)
    handler.close()
    files = _numbered(tmp_path, ".gz")
    assert len(files) > 2
    text = "".join(_read(f).decode("utf-8") for f in files)
    assert re.findall(r"message (\d{3})", text) == [f"{n:03d}" for n in range(12)]
    old = time.time() - 8 * DAY
    os.utime(files[0], (old, old))
    assert handler.getFilesToDelete() == [str(files[0])]


# -- review findings: signal handlers, retention failures, thread kind, modes -----------------


_REOPEN_DURING_WRITE = """
import faulthandler, logging, sys
import mplog

faulthandler.dump_traceback_later(60, exit=True)  # a deadlock fails, loudly


class Interrupted(mplog.ConcurrentRotatingFileHandler):
    reopened = 0

    def _write(self, shared, data, size):
        super()._write(shared, data, size)
        if self.reopened < 5:  # as if SIGUSR1 arrived here: gunicorn's reopen_files()
            self.reopened += 1
            self.close()
            self.stream = self._open()


handler = Interrupted(sys.argv[1], maxBytes=120, backupCount=50, compress="gzip", compress_delay=0)
for number in range(40):
    handler.emit(logging.makeLogRecord({"msg": f"record {number} " + "x" * 20}))
handler.close()
print("done")
"""


def test_close_from_a_signal_handler_that_interrupted_a_write(tmp_path: Path) -> None:
    """gunicorn's reopen_files() runs close() then _open() in a signal handler, which may
    interrupt emit() while it holds the writers' lock: close() must neither wait for the
    compressor (which needs that lock) nor release the lock under the write; every record
    ends up once in the files and every backup compressed."""
    import subprocess

    script = tmp_path / "reopen.py"
    script.write_text(_REOPEN_DURING_WRITE, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    result = subprocess.run(
        [sys.executable, str(script), str(logs / BASE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    names = _names(logs)
    assert not [n for n in names if n != BASE and not n.endswith(".gz")], names
    records = [line for name in names for line in _read(logs / name).decode().splitlines()]
    numbers = sorted(int(line.split()[1]) for line in records)
    assert numbers == list(range(40))


def test_a_retention_failure_costs_no_record(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If pruning fails (a backup that cannot be deleted, a file system refusing the
    claim check), the rotation still completes and the record is written; the failure
    is reported once, not at every rotation."""

    def broken_prune(self: object, busy: object) -> list[str]:
        raise PermissionError(errno.EACCES, "Permission denied", "app.log.old")

    monkeypatch.setattr(mplog.rotation.Backups, "prune", broken_prune)
    handler = TimedHandler(tmp_path / BASE, "S", backupCount=1, delay=True)
    try:
        for number in range(6):
            _write(handler, [number])
            clock.now += 1.5  # every record in a new period: a rotation each time
    finally:
        handler.close()
    found = sorted(n for name in _names(tmp_path) for n in _numbers(_read(tmp_path / name)))
    assert found == list(range(6))
    assert len(handler.reports) == 1
    assert "retention" in handler.reports[0][0]


def test_an_unlockable_backup_is_still_rotated_past_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where flock fails outright (EBADF for a read-only descriptor on NFS), the numbered
    shift still drops the backup past backupCount and nothing is lost."""
    real = mplog.backup_claims.try_lock_descriptor

    def refusing(fd: int) -> bool:
        if os.fstat(fd).st_size and not os.path.samestat(os.fstat(fd), os.stat(tmp_path / BASE)):
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real(fd)

    monkeypatch.setattr(mplog.backup_claims, "try_lock_descriptor", refusing)
    handler = Handler(tmp_path / BASE, maxBytes=RECORD, backupCount=2)
    try:
        _write(handler, range(6))
    finally:
        handler.close()
    assert handler.reports == []
    assert _names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2"]
    assert [_numbers(_read(tmp_path / n)) for n in (f"{BASE}.2", f"{BASE}.1", BASE)] == [
        [3],
        [4],
        [5],
    ]


def test_the_compression_thread_is_never_a_daemon(tmp_path: Path) -> None:
    """In batched mode the rotation happens in the (daemon) writer thread; the compression
    thread it starts must not inherit that, or a multiprocessing child's exit kills it."""
    started = threading.Event()
    release = threading.Event()
    handler = mplog.ConcurrentRotatingFileHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=5,
        compress="gzip",
        compress_delay=0,
        batched=True,
    )
    assert handler._archiver is not None
    real_sweep = handler._archiver.sweep

    def slow_sweep() -> None:
        started.set()
        release.wait(30)
        real_sweep()

    handler._archiver.sweep = slow_sweep  # type: ignore[method-assign]
    try:
        _write(handler, range(3))
        handler.flush()
        assert started.wait(30), "no compression started"
        threads = [t for t in threading.enumerate() if t.name == "mplog-compress"]
        assert threads
        assert not any(t.daemon for t in threads)
    finally:
        release.set()
        handler.close()


def test_with_owner_only_a_callables_output_gets_the_source_mode(
    tmp_path: Path, no_umask: None
) -> None:
    """owner= without chmod=: the compressed file still gets its source's mode, not the
    (wider) mode the function created it with."""

    def wide_gzip2(path: str) -> str:
        out = gzip2(path)
        os.chmod(out, 0o666)
        return out

    wide_gzip2.suffix = ".gz2"  # type: ignore[attr-defined]
    handler = Handler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=3,
        compress=wide_gzip2,
        compress_delay=0,
        owner=(os.getuid(), os.getgid()),
    )
    try:
        _write(handler, [0])
        os.chmod(tmp_path / BASE, 0o640)
        _write(handler, [1])
    finally:
        handler.close()
    assert handler.reports == []
    assert stat.S_IMODE((tmp_path / f"{BASE}.1.gz2").stat().st_mode) == 0o640
