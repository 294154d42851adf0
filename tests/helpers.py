"""Helpers shared by the test modules, which import them by name (no test module imports
another).  The fixtures are in conftest.py; the entry points of child processes are in
the *_workers.py modules (fleet_workers also reads back what its fleets write).

Sections: the log and the clock; records and handlers; framed records (mp_workers'
format) read back from a log's files; processes; numbered text records in plain or
compressed backups; the examples, servers among them, in subprocesses.
"""

from __future__ import annotations

import bz2
import calendar
import contextlib
import gzip
import logging
import lzma
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import mp_workers
import mplog
import mplog._compressors

# -- the log and the clock -------------------------------------------------------------------

BASE = "app.log"  # the log most tests write
LOCK = ".__app.lock"  # its lock file
PRESENCE = ".__app.open"  # its presence file (mplog._presence)
T0 = calendar.timegm((2024, 1, 10, 13, 37, 11))  # a Wednesday, in UTC: the clock's start
DAY, HOUR = 24 * 60 * 60, 60 * 60


class Clock:
    """A frozen ``time.time`` that tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


# -- records and handlers --------------------------------------------------------------------


def make_record(msg: str) -> logging.LogRecord:
    """A record of *msg* with makeLogRecord's defaults (level NOTSET)."""
    return logging.makeLogRecord({"msg": msg})


def info_record(msg: str) -> logging.LogRecord:
    """A record of *msg* at level INFO, level name included."""
    return logging.makeLogRecord({"msg": msg, "levelno": logging.INFO, "levelname": "INFO"})


def log_to(handler: logging.Handler, message: str) -> None:
    """Pass an INFO record of *message* through *handler*'s filters and lock (handle)."""
    handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO}))


class RecordingHandler(mplog.ConcurrentRotatingFileHandler):
    """Collects the exceptions passed to handleError instead of printing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors_seen: list[BaseException] = []

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        assert error is not None
        self.errors_seen.append(error)


# -- framed records in the files of a log (see mp_workers) -----------------------------------

WORKERS = 4  # processes of a multi-process scenario
PAYLOAD = 60  # characters of payload of a fixed-size record


@dataclass(frozen=True)
class Rec:
    """One record read back from a file."""

    worker: int
    seq: int
    created: float
    kind: str
    nbytes: int  # on disk, framing and terminator included


_HEADER = re.compile(rb"<(\d{8}):([0-9a-f]{8})>")
_TRACEBACK = "\nTraceback (most recent call last):\n"


def parse_records(data: bytes, where: str) -> list[Rec]:
    """Split *data* into framed records; fail on any stray, torn or foreign byte."""
    records = []
    pos = 0
    while pos < len(data):
        match = _HEADER.match(data, pos)
        if match is None:
            raise AssertionError(f"{where}: stray bytes at offset {pos}: {data[pos : pos + 80]!r}")
        end = match.end() + int(match.group(1))
        body = data[match.end() : end]
        if data[end : end + 1] != b"\n":
            raise AssertionError(f"{where}: record at offset {pos} is cut short or run into")
        if zlib.crc32(body) != int(match.group(2), 16):
            raise AssertionError(f"{where}: record at offset {pos} fails its checksum (torn)")
        records.append(_decode(body.decode("utf-8"), f"{where}@{pos}", end + 1 - pos))
        pos = end + 1
    return records


def _decode(text: str, where: str, nbytes: int) -> Rec:
    created, worker_text, seq_text, kind, rest = text.split(" ", 4)
    worker, seq = int(worker_text), int(seq_text)
    if kind == "exc":
        rest, _, tb = rest.partition(_TRACEBACK)
        assert tb.endswith(f"ValueError: boom {worker} {seq}"), f"{where}: bad traceback"
    size = len(rest) if kind == "small" else None
    assert rest == mp_workers.payload(worker, seq, kind, size), f"{where}: foreign payload"
    return Rec(worker, seq, float(created), kind, nbytes)


def read_records(path: Path) -> list[Rec]:
    return parse_records(path.read_bytes(), path.name)


@dataclass(frozen=True)
class LogFile:
    """A file of the log: a backup (period/counter for time names) or the active file."""

    path: Path
    period: str = ""  # time-named backups only
    counter: int = 0

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def period_start(self) -> float:
        """The UTC epoch of the start of the named period."""
        fmt = "%Y-%m-%d_%H-%M-%S" if len(self.period) > 13 else "%Y-%m-%d_%H"
        return float(calendar.timegm(time.strptime(self.period, fmt)))


_PERIODS = {
    "S": r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d",
    "H": r"\d{4}-\d\d-\d\d_\d\d",
}


def log_files(directory: Path, when: str | None = None, extra: Sequence[str] = ()) -> list[LogFile]:
    """Every file of the log, oldest first (then *extra* names, then the active file).

    Fails on any unexpected directory entry, and on a gap in the backup numbering
    (a gap means a backup was overwritten or lost; callers do not prune backups,
    except the backupCount test, where the oldest numbers are the ones to go).
    """
    names = set(os.listdir(directory)) - {LOCK, PRESENCE, *extra}
    assert BASE in names, f"no active file in {sorted(names)}"
    names.discard(BASE)
    if when is None:
        numbers = []
        for name in names:
            match = re.fullmatch(re.escape(BASE) + r"\.([1-9]\d*)", name)
            assert match, f"unexpected file {name!r}"
            numbers.append(int(match.group(1)))
        missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
        assert not missing, f"backups overwritten or lost: no {[f'{BASE}.{n}' for n in missing]}"
        backups = [LogFile(directory / f"{BASE}.{n}") for n in sorted(numbers, reverse=True)]
    else:
        backups = []
        for name in names:
            match = re.fullmatch(re.escape(BASE) + rf"\.({_PERIODS[when]})(?:\.([1-9]\d*))?", name)
            assert match, f"unexpected file {name!r}"
            backups.append(LogFile(directory / name, match.group(1), int(match.group(2) or 0)))
        backups.sort(key=lambda f: (f.period, f.counter))
        by_period: dict[str, list[int]] = defaultdict(list)
        for backup in backups:
            by_period[backup.period].append(backup.counter)
        for period, counters in by_period.items():
            assert counters == list(range(len(counters))), f"{period}: counters {counters}"
    return [*backups, *(LogFile(directory / name) for name in extra), LogFile(directory / BASE)]


def assert_each_once_in_order(records: Sequence[Rec], counts: dict[int, int]) -> None:
    """Worker w's records, read in file order, are exactly seq 0 .. counts[w]-1 in order."""
    seqs: dict[int, list[int]] = defaultdict(list)
    for record in records:
        seqs[record.worker].append(record.seq)
    problems = [f"records from unknown workers {sorted(set(seqs) - set(counts))}"] * bool(
        set(seqs) - set(counts)
    )
    for worker, count in counts.items():
        got = seqs.get(worker, [])
        if got == list(range(count)):
            continue
        seen = Counter(got)
        missing = sorted(set(range(count)) - set(seen))
        doubled = sorted(seq for seq, n in seen.items() if n > 1)
        disorder = next((i for i in range(1, len(got)) if got[i] <= got[i - 1]), None)
        problems.append(
            f"worker {worker}: {len(missing)} lost {missing[:5]}, {len(doubled)} duplicated "
            f"{doubled[:5]}, first out of order at position {disorder}"
            + (f" ({got[disorder - 1]} then {got[disorder]})" if disorder else "")
        )
    assert not problems, "\n".join(problems)


def all_records(files: Sequence[LogFile]) -> list[Rec]:
    return [record for file in files for record in read_records(file.path)]


# -- processes -------------------------------------------------------------------------------


def reap(processes: Sequence[Any]) -> None:
    """Make sure no child outlives the test, whatever happened."""
    for process in processes:
        if process.pid is None:  # never started
            continue
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


@contextlib.contextmanager
def started(ctx: Any, target: Any, arglists: Sequence[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """Start one process per argument tuple, release them together; reap them all on exit."""
    barrier = ctx.Barrier(len(arglists) + 1)
    processes = [
        ctx.Process(target=target, args=(*args, barrier), daemon=True) for args in arglists
    ]
    try:
        for process in processes:
            process.start()
        barrier.wait(60)
        yield processes
    finally:
        reap(processes)


@contextlib.contextmanager
def parent_logger(path: Path, handler_kwargs: dict[str, Any], name: str) -> Iterator[Any]:
    """A logger configured in this (the parent) process, torn down afterwards."""
    logger = mp_workers.make_logger(str(path), handler_kwargs, name)
    try:
        yield logger
    finally:
        mp_workers.close_logger(logger)


# -- processes killed, locks probed ----------------------------------------------------------


def lock_is_held(lock_path: Path) -> bool:
    """True if some process holds the flock on *lock_path* (probed with our own descriptor)."""
    import fcntl

    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing our only descriptor releases the lock if we got it
    return False


def kill_and_reap(process: Any, timeout: float = 60) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout)
    assert process.exitcode == -signal.SIGKILL


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Poll *condition* until it is true; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.001)


# -- numbered text records in backups, plain or compressed -----------------------------------
#
# The compression, retention, rotation naming and permission tests write records
# "record 000012 xxx..." of RECORD bytes each and read them back from every form.

P0, P1 = "2024-01-10_13", "2024-01-10_14"  # hourly period names of T0 and T0 + 1 h
RECORD = 39  # bytes of every record written by write_records() (text + newline)


def _zstd_decompress(data: bytes) -> bytes:
    zstd = mplog._compressors._zstd_module()
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


class _Reporting:
    """Mixin: keep what goes to handleError (message and exception) instead of printing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reports: list[tuple[str, BaseException | None]] = []  # before: __init__ may report
        super().__init__(*args, **kwargs)

    def handleError(self, record: logging.LogRecord) -> None:
        self.reports.append((record.getMessage(), sys.exc_info()[1]))


class ReportingHandler(_Reporting, mplog.ConcurrentRotatingFileHandler):
    """A size- (and time-) rotating handler whose reports are kept in ``reports``."""


class ReportingTimedHandler(_Reporting, mplog.ConcurrentTimedRotatingFileHandler):
    """A time-rotating handler whose reports are kept in ``reports``."""


def record_text(number: int) -> str:
    """Record *number*: always RECORD bytes on disk."""
    return f"record {number:06d} " + "x" * (RECORD - 15)


def write_records(handler: logging.Handler, numbers: Sequence[int] | range) -> None:
    for number in numbers:
        handler.emit(info_record(record_text(number)))


def record_numbers(data: bytes) -> list[int]:
    """The record numbers in *data*, which must hold nothing but whole records."""
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == "", f"a record is cut short: {lines[-1]!r}"
    numbers = [int(line.split()[1]) for line in lines[:-1]]
    assert [record_text(n) for n in numbers] == lines[:-1], "foreign bytes in a log file"
    return numbers


def _suffix_of(name: str) -> str:
    return next((s for s in _DECOMPRESS if name.endswith(s)), "")


def read_log(path: Path) -> bytes:
    """The content of a log file, decompressed if its suffix says so."""
    suffix = _suffix_of(path.name)
    return _DECOMPRESS[suffix](path.read_bytes()) if suffix else path.read_bytes()


def names_in(directory: Path) -> list[str]:
    """The directory's entries, the lock file left out."""
    return sorted(name for name in os.listdir(directory) if name not in (LOCK, PRESENCE))


def uncompressed_names(directory: Path) -> list[str]:
    """The log's files by uncompressed name, hidden ones left out: what a test may check
    while the background compressor may be renaming app.log.1 to app.log.1.gz."""
    return sorted(
        {name.removesuffix(_suffix_of(name)) for name in names_in(directory) if name[0] != "."}
    )


def size_named(directory: Path, suffix: str) -> list[Path]:
    """The size-named backups, oldest first, then the active file; every backup must
    be compressed with *suffix*, numbered 1..n without a gap."""
    names = set(names_in(directory)) - {BASE}
    pattern = re.compile(re.escape(BASE) + r"\.([1-9]\d*)" + re.escape(suffix))
    numbers = sorted(int(m.group(1)) for m in map(pattern.fullmatch, names) if m)
    assert len(numbers) == len(names), f"unexpected files: {sorted(names)}"
    assert numbers == list(range(1, len(numbers) + 1)), f"a gap in {numbers}"
    return [directory / f"{BASE}.{n}{suffix}" for n in reversed(numbers)] + [directory / BASE]


def record_numbers_in(paths: Sequence[Path]) -> list[list[int]]:
    return [record_numbers(read_log(path)) for path in paths]


def gzip_file(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.write_bytes(gzip.compress(data))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def plain_file(path: Path, data: bytes, mtime: float | None = None) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def rotate_once(handler: logging.Handler, first: int) -> None:
    """Write two records into a fresh active file: the second rotates (maxBytes < 2 records)."""
    write_records(handler, [first, first + 1])


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[None]:
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


def log_last_namer(default: str) -> str:
    """A stdlib-style namer, as in CPython's own namer test: app.log.3 -> app.3.log,
    app.log.<period>.1 -> app.<period>.1.log."""
    directory, name = os.path.split(default)
    return os.path.join(directory, name.replace("app.log.", "app.", 1) + ".log")


# -- the examples, servers among them, in subprocesses ---------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVER_START_SECONDS = 30.0


@contextlib.contextmanager
def process_group(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """Start *args* in a new process group; on exit, make sure it and its children are gone."""
    with subprocess.Popen(args, start_new_session=True, text=True, **kwargs) as proc:
        try:
            yield proc
        finally:
            stop_process_group(proc, grace=0)


def stop_process_group(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM *proc* and wait *grace* seconds; then SIGKILL its process group and reap it.

    The group is killed only while the child is not yet reaped, so its PID (the
    group's id) cannot have been reused.
    """
    try:
        if grace and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def example_env(**variables: str) -> dict[str, str]:
    """This process's environment plus *variables*; no .pyc files written into examples/."""
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **variables}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(
    args: list[str], tmp_path: Path, ready: tuple[Path, str, int], **kwargs: Any
) -> Iterator[subprocess.Popen[str]]:
    """Start a server in *tmp_path*, wait until it is ready, and SIGTERM it by PID when done.

    Ready means: *ready* = ``(log, pattern, count)``, *pattern* occurs *count*
    times in *log*.  Fails if the server exits first or the deadline passes.
    """
    output = tmp_path / "server-output.txt"
    log, pattern, count = ready
    with (
        output.open("w") as out,
        process_group(args, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, **kwargs) as server,
    ):
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while len(re.findall(pattern, log.read_text() if log.exists() else "")) < count:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"not ready: {count} x {pattern!r}:\n{output.read_text()}")
                time.sleep(0.05)
            yield server
        finally:
            stop_process_group(server, grace=20)
    assert server.returncode == 0, output.read_text()


def files_of_log(log_dir: Path, name: str) -> list[Path]:
    """*name* and its rotated files, oldest first: ``name.3``, ``name.2``, ``name.1``, ``name``
    (or ``name.<period>``..., ``name`` for time-named backups)."""

    def age(path: Path) -> tuple[int, int, str]:
        suffix = path.name[len(name) + 1 :]
        if not suffix:
            return (2, 0, "")
        return (0, -int(suffix), "") if suffix.isdigit() else (1, 0, suffix)

    paths = [p for p in log_dir.iterdir() if p.name == name or p.name.startswith(name + ".")]
    return sorted(paths, key=age)


def log_lines(log_dir: Path, name: str) -> list[str]:
    lines: list[str] = []
    for path in files_of_log(log_dir, name):
        text = path.read_text(encoding="utf-8")
        assert not text or text.endswith("\n"), f"{path.name}: torn last record"
        lines += text.splitlines()
    return lines


def assert_exactly_once(found: list[Any], expected: Any) -> None:
    """Every expected item appears once in *found*, and nothing else does."""
    counts = Counter(found)
    duplicated = {item: n for item, n in counts.items() if n > 1}
    assert not duplicated, f"duplicated: {list(duplicated.items())[:5]}"
    missing = set(expected) - set(counts)
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"
    assert set(counts) == set(expected), f"unexpected: {sorted(set(counts) - set(expected))[:5]}"
