"""Drop-in compatibility with the stdlib's rotating handlers and with concurrent-log-handler.

Part 1 runs CPython's own handler tests (the running interpreter's ``test.test_logging``)
with the stdlib classes replaced by mplog's.  Part 2 holds our own compatibility tests;
they freeze ``time.time`` instead of sleeping.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime
import gzip
import importlib
import inspect
import json
import logging
import logging.handlers
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import types
import unittest
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import mplog
from helpers import DAY, HOUR, T0, Clock, info_record, log_last_namer

# -- part 1: CPython's own tests as the reference ------------------------------------------

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # asyncore/smtpd, imported by the suite
    try:
        cpython: types.ModuleType | None = importlib.import_module("test.test_logging")
        CPYTHON_MISSING = ""
    except (ImportError, unittest.SkipTest) as err:
        cpython = None
        CPYTHON_MISSING = (
            f"CPython's test suite is not importable here ({err!r}): this interpreter was "
            "installed without its 'test' package (e.g. Debian's libpython3.X-testsuite)"
        )

REFERENCE_CASES = ("FileHandlerTest", "RotatingFileHandlerTest", "TimedRotatingFileHandlerTest")

# CPython tests that cannot apply to mplog, each with the reason pytest reports.
EXCLUDED = {
    # bpo-42378: after close(), the stdlib silently drops records emitted to a handler
    # opened with mode="w", because reopening would truncate the file again.  mplog
    # truncates only at a handler's first open, so it reopens in append mode and keeps
    # the record (invariant 1, no record lost): the test's expectation is the drop.
    ("FileHandlerTest", "test_emit_after_closing_in_write_mode"): (
        "bpo-42378: mplog appends a record emitted after close() in mode 'w' instead of "
        "dropping it (it never truncates twice); see test_emit_after_close_in_write_mode_appends"
    ),
}


def _reference_params() -> list[Any]:
    if cpython is None:
        return [pytest.param("", "", marks=pytest.mark.skip(reason=CPYTHON_MISSING), id="missing")]
    loader = unittest.TestLoader()
    params = []
    for case in REFERENCE_CASES:
        for method in loader.getTestCaseNames(getattr(cpython, case)):
            reason = EXCLUDED.get((case, method))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            params.append(pytest.param(case, method, marks=marks, id=f"{case}.{method}"))
    return params


class _LoggingWithOurFileHandler(types.ModuleType):
    """The ``logging`` module as test_logging sees it, with FileHandler replaced by ours.

    ``logging.FileHandler`` itself cannot be replaced: ``BaseRotatingHandler.__init__``
    calls ``logging.FileHandler.__init__`` through the module, which would then recurse
    into ours.  So only the test module's own ``logging`` name is redirected.
    """

    FileHandler = mplog.ConcurrentRotatingFileHandler

    def __getattr__(self, name: str) -> Any:
        return getattr(logging, name)


def _stdlib_rolls_over_empty_files(directory: Path) -> bool:
    """True before gh-116263 (3.12.3/3.13): the stdlib then rotated an empty file."""
    handler = logging.handlers.RotatingFileHandler(
        directory / "probe.log", maxBytes=1, encoding="utf-8"
    )
    try:
        return bool(handler.shouldRollover(logging.makeLogRecord({"msg": "probe"})))
    finally:
        handler.close()


@pytest.mark.parametrize(("case", "method"), _reference_params())
def test_cpython_reference(
    case: str, method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython's own handler test passes with the stdlib classes replaced by mplog's."""
    assert cpython is not None
    # Before gh-116263 (3.12.3, 3.13) this test asserted that a record bigger than
    # maxBytes rolls over an *empty* file; the stdlib no longer does that and mplog
    # follows the fix on every version (test_empty_file_is_never_rolled_over_by_size).
    asserts_old_behaviour = (case, method) == ("RotatingFileHandlerTest", "test_should_rollover")
    if asserts_old_behaviour and _stdlib_rolls_over_empty_files(tmp_path):
        pytest.skip("asserts the rollover of an empty file, undone by gh-116263")
    monkeypatch.setattr(
        logging.handlers, "RotatingFileHandler", mplog.ConcurrentRotatingFileHandler
    )
    monkeypatch.setattr(
        logging.handlers, "TimedRotatingFileHandler", mplog.ConcurrentTimedRotatingFileHandler
    )
    monkeypatch.setattr(cpython, "logging", _LoggingWithOurFileHandler("logging"))
    # The tests' temporary files, and our lock files next to them, go into tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # BaseTest.setUp refuses a root logger with handlers (pytest's), and tearDown
    # closes every root handler: give it an empty list; monkeypatch restores ours.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])

    result = unittest.TestResult()
    getattr(cpython, case)(method).run(result)

    problems = [*result.failures, *result.errors]
    for test, trace in problems:
        print(f"{test}:\n{trace}")
    assert not problems, "\n".join(trace for _test, trace in problems)
    assert not result.unexpectedSuccesses
    if result.skipped:
        pytest.skip(f"skipped by CPython's suite: {result.skipped[0][1]}")
    assert result.testsRun == 1


# -- helpers for our own tests -------------------------------------------------------------

US_EASTERN = "EST+05EDT,M3.2.0,M11.1.0"  # DST from 2012-03-11 02:00 to 2012-11-04 02:00
INDIA = "IST-05:30"  # a fixed offset: local names differ from UTC ones, no DST

needs_tzset = pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is POSIX-only")


@contextlib.contextmanager
def timezone(tz: str) -> Iterator[None]:
    """Run with local time in *tz*; restore the previous TZ afterwards."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def _contents(directory: Path) -> dict[str, bytes]:
    """The files of a log directory with their bytes, lock files left out."""
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if not path.name.startswith(".__")
    }


def _drive(
    make: Callable[[Path], logging.Handler], directory: Path, clock: Clock, times: list[int]
) -> dict[str, bytes]:
    """Create a handler at times[0], emit one record at each instant, return the files."""
    directory.mkdir()
    clock.now = times[0]
    handler = make(directory / "app.log")
    try:
        for number, instant in enumerate(times):
            clock.now = instant
            handler.emit(info_record(f"record {number}"))
    finally:
        handler.close()
    return _contents(directory)


class _Recording(mplog.ConcurrentRotatingFileHandler):
    """Keeps what would go to handleError instead of printing it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[BaseException | None] = []

    def handleError(self, record: logging.LogRecord) -> None:
        self.failures.append(sys.exc_info()[1])


# -- signatures and naming -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (mplog.ConcurrentRotatingFileHandler, logging.handlers.RotatingFileHandler),
        (mplog.ConcurrentTimedRotatingFileHandler, logging.handlers.TimedRotatingFileHandler),
    ],
)
def test_positional_signature_is_the_stdlibs(ours: type, theirs: type) -> None:
    """Every stdlib parameter exists at the same position, with the same kind and default."""
    our_params = list(inspect.signature(ours).parameters.values())
    their_params = list(inspect.signature(theirs).parameters.values())
    for position, theirs_param in enumerate(their_params):
        ours_param = our_params[position]
        assert (ours_param.name, ours_param.kind, ours_param.default) == (
            theirs_param.name,
            theirs_param.kind,
            theirs_param.default,
        )


@pytest.mark.parametrize("delay", [False, True])
def test_size_rotation_matches_the_stdlib(tmp_path: Path, delay: bool) -> None:
    """The same records give the stdlib's app.log, app.log.1, app.log.2 with the same bytes."""

    def run(make: Callable[..., logging.Handler], directory: Path) -> dict[str, bytes]:
        directory.mkdir()
        handler = make(directory / "app.log", "a", 20, 2, "utf-8", delay)
        try:
            for number in range(7):  # 10-byte records: two fit, never exactly 20 bytes
                handler.emit(info_record(f"record {number}"))
        finally:
            handler.close()
        return _contents(directory)

    expected = run(logging.handlers.RotatingFileHandler, tmp_path / "stdlib")
    assert run(mplog.ConcurrentRotatingFileHandler, tmp_path / "mplog") == expected
    assert expected == {
        "app.log": b"record 6\n",
        "app.log.1": b"record 4\nrecord 5\n",
        "app.log.2": b"record 2\nrecord 3\n",
    }


@pytest.mark.parametrize(
    ("when", "suffix"),
    [
        ("S", "2024-01-10_13-37-11"),
        ("M", "2024-01-10_13-37"),
        ("H", "2024-01-10_13"),
        ("D", "2024-01-10"),
        ("midnight", "2024-01-10"),
        # "Wd" periods run from the midnight ending day d: W0 from Tuesday the 9th.
        ("W0", "2024-01-09"),
        ("W2", "2024-01-04"),
    ],
)
def test_backup_is_named_for_the_start_of_its_period(
    tmp_path: Path, clock: Clock, when: str, suffix: str
) -> None:
    """A time-rotated file gets the stdlib's strftime suffix for the period it covers."""
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        tmp_path / "app.log", when, utc=True, delay=True
    )
    try:
        handler.emit(info_record("first"))
        clock.now = T0 + 8 * DAY
        handler.emit(info_record("second"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {"app.log": b"second\n", f"app.log.{suffix}": b"first\n"}


# Every schedule on which the stdlib of Python 3.9 to 3.13 agrees with itself: 3.13
# changed midnight/weekly with interval > 1 and DST handling (checked against fixed
# epochs in test_compute_rollover_* below).
_SCHEDULES = [
    ("S", 1),
    ("S", 2),
    ("M", 1),
    ("M", 3),
    ("H", 1),
    ("H", 2),
    ("D", 1),
    ("D", 2),
    ("midnight", 1),
    ("W0", 1),
    ("W4", 1),
]
_UNIT = {"S": 1, "M": 60, "H": HOUR, "D": DAY, "MIDNIGHT": DAY, "W": 7 * DAY}


@needs_tzset
@pytest.mark.parametrize("utc", [True, False], ids=["utc", "local"])
@pytest.mark.parametrize(("when", "interval"), _SCHEDULES)
def test_time_rotation_matches_the_stdlib(
    tmp_path: Path, clock: Clock, when: str, interval: int, utc: bool
) -> None:
    """Records at the same instants give the stdlib's backup names, contents and pruning."""
    step = _UNIT["W" if when.upper().startswith("W") else when.upper()] * interval
    offsets = [0, step // 2, step + 1, 2 * step + 3, 5 * step + 7, 5 * step + 8, 9 * step + 9]
    times = [T0 + offset for offset in offsets]

    def stdlib(path: Path) -> logging.Handler:
        return logging.handlers.TimedRotatingFileHandler(
            path, when, interval, 2, "utf-8", True, utc
        )

    def ours(path: Path) -> logging.Handler:
        return mplog.ConcurrentTimedRotatingFileHandler(path, when, interval, 2, "utf-8", True, utc)

    with timezone(INDIA):
        expected = _drive(stdlib, tmp_path / "stdlib", clock, times)
        actual = _drive(ours, tmp_path / "mplog", clock, times)
    assert actual == expected
    assert len(expected) == 3  # app.log and two backups: rotation and pruning both ran


def test_emit_after_close_in_write_mode_appends(tmp_path: Path) -> None:
    """Mode 'w' truncates once; a record emitted after close() is appended, not lost."""
    path = tmp_path / "app.log"
    path.write_bytes(b"from before\n")
    handler = mplog.ConcurrentRotatingFileHandler(path, "w")
    handler.emit(info_record("one"))
    handler.close()
    handler.emit(info_record("two"))
    handler.close()
    assert path.read_bytes() == b"one\ntwo\n"


# -- namer and rotator ---------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["size", "time"])
def test_namer_and_compressing_rotator_are_honoured(
    tmp_path: Path, clock: Clock, scheme: str
) -> None:
    """The rotator is called with the file and the namer's name, and its output is the backup."""
    path = tmp_path / "app.log"
    calls: list[tuple[str, str]] = []

    def rotator(source: str, dest: str) -> None:
        calls.append((source, dest))
        with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.remove(source)

    handler: mplog.ConcurrentRotatingFileHandler
    if scheme == "size":
        handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=20, backupCount=2)
        backup = f"{path}.1.gz"
    else:
        handler = mplog.ConcurrentTimedRotatingFileHandler(
            path, "midnight", backupCount=2, utc=True, delay=True
        )
        backup = f"{path}.2024-01-10.gz"
    handler.namer = lambda name: name + ".gz"
    handler.rotator = rotator
    try:
        handler.emit(info_record("first record"))
        clock.now += DAY
        handler.emit(info_record("second record"))
    finally:
        handler.close()
    assert calls == [(str(path), backup)]
    assert gzip.decompress(Path(backup).read_bytes()) == b"first record\n"
    assert path.read_bytes() == b"second record\n"


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [mplog.ConcurrentRotatingFileHandler, mplog.ConcurrentTimedRotatingFileHandler]
)
@pytest.mark.parametrize("delay", [False, True])
def test_file_is_created_at_construction_unless_delay(
    tmp_path: Path, cls: type[mplog.ConcurrentRotatingFileHandler], delay: bool
) -> None:
    """As with FileHandler, the log (and its lock) exist after construction unless delay=True."""
    path = tmp_path / "app.log"
    handler = cls(path, delay=delay)
    try:
        assert path.exists() is not delay
        assert (tmp_path / ".__app.lock").exists() is not delay
        assert (handler.stream is None) is delay
        handler.emit(info_record("record"))
        assert path.read_bytes() == b"record\n"
    finally:
        handler.close()


def test_pathlib_path_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Path, even a relative one, works as with the stdlib: baseFilename is the absolute str."""
    monkeypatch.chdir(tmp_path)
    handler = mplog.ConcurrentRotatingFileHandler(Path("app.log"), maxBytes=10, backupCount=1)
    try:
        assert handler.baseFilename == str(tmp_path / "app.log")
        handler.emit(info_record("record 0"))
        handler.emit(info_record("record 1"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {"app.log": b"record 1\n", "app.log.1": b"record 0\n"}


# -- non-regular files ---------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs /dev/null")
def test_device_is_never_rotated(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device gets its records without error and is never rotated: by size, time or doRollover."""
    # A symlink to /dev/null: should rotation ever be attempted, it renames the link
    # in tmp_path, never the machine's /dev/null.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    link = tmp_path / "app.log"
    link.symlink_to(os.devnull)
    handler = _Recording(link, maxBytes=1, backupCount=2, when="S", utc=True)
    try:
        for number in range(4):
            clock.now += 2
            record = info_record(f"record {number}")
            assert not handler.shouldRollover(record)
            handler.emit(record)
            handler.doRollover()  # "rotate at start" code must not move /dev/null either
    finally:
        handler.close()
    assert handler.failures == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["app.log", "tmp"]
    assert os.readlink(link) == os.devnull


@pytest.mark.skipif(os.name == "nt", reason="needs /dev/null")
def test_lock_of_a_device_is_kept_in_a_private_directory_of_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler on /dev/null keeps its lock in ``mplog-<uid>`` (mode 0700) in the temp
    directory: /dev is not writable, and the temp directory itself is everyone's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    handler = mplog.ConcurrentRotatingFileHandler(os.devnull, maxBytes=1)
    try:
        private = tmp_path / f"mplog-{os.geteuid()}"
        assert (private / ".__null.lock").exists()
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert not handler.shouldRollover(info_record("record"))
    finally:
        handler.close()


# -- retention and unique names ------------------------------------------------------------


@pytest.mark.parametrize("custom_namer", [False, True], ids=["default-names", "custom-namer"])
def test_backup_count_prunes_only_this_logs_backups(
    tmp_path: Path, clock: Clock, custom_namer: bool
) -> None:
    """Retention finds backups named by the namer and leaves other logs' files alone."""
    days = [f"2024-01-0{day}" for day in range(1, 5)]
    name = log_last_namer if custom_namer else (lambda name: name)
    ours = {os.path.basename(name(f"app.log.{day}")) for day in days}
    foreign = {f"app.log.b.{day}" for day in days}  # gh-93205: the log "app.log.b"
    foreign |= {f"app.log.{day}.bak" for day in days}  # not a name this handler makes
    if custom_namer:
        foreign |= {f"app.log.{day}" for day in days}  # default names, not the namer's
        foreign |= {f"app.b.{day}.log" for day in days}  # "app.log.b" through the same namer
    for file_name in ours | foreign:
        (tmp_path / file_name).write_bytes(b"old\n")

    clock.now = calendar.timegm((2024, 1, 5, 10, 0, 0))
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        tmp_path / "app.log", "midnight", backupCount=2, utc=True, delay=True
    )
    if custom_namer:
        handler.namer = log_last_namer
    try:
        handler.emit(info_record("on the 5th"))
        clock.now += DAY
        handler.emit(info_record("on the 6th"))
    finally:
        handler.close()

    kept = {
        os.path.basename(name("app.log.2024-01-04")),
        os.path.basename(name("app.log.2024-01-05")),
    }
    assert set(_contents(tmp_path)) == foreign | kept | {"app.log"}
    assert (tmp_path / os.path.basename(name("app.log.2024-01-05"))).read_bytes() == b"on the 5th\n"


def test_size_and_time_give_distinct_ordered_names_within_one_period(
    tmp_path: Path, clock: Clock
) -> None:
    """Size rotations in one period add .1, .2 ... after app.log.<period>, never overwriting."""
    path = tmp_path / "app.log"
    (tmp_path / "app.log.2024-01-10").write_bytes(b"already there\n")
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        path, "midnight", utc=True, delay=True, maxBytes=12
    )
    try:
        for number in range(4):  # 9-byte records: each one after the first rotates by size
            handler.emit(info_record(f"record {number}"))
        clock.now += DAY  # the next record rotates by time, still naming the 10th
        handler.emit(info_record("record 4"))
        handler.backupCount = 2
        to_delete = [os.path.basename(name) for name in handler.getFilesToDelete()]
    finally:
        handler.close()
    assert _contents(tmp_path) == {
        "app.log": b"record 4\n",
        "app.log.2024-01-10": b"already there\n",
        "app.log.2024-01-10.1": b"record 0\n",
        "app.log.2024-01-10.2": b"record 1\n",
        "app.log.2024-01-10.3": b"record 2\n",
        "app.log.2024-01-10.4": b"record 3\n",
    }
    assert to_delete == ["app.log.2024-01-10", "app.log.2024-01-10.1", "app.log.2024-01-10.2"]


def test_namer_filing_backups_elsewhere_never_overwrites_one(tmp_path: Path, clock: Clock) -> None:
    """Backups the namer puts in another directory get distinct names too, none is replaced."""
    (tmp_path / "old").mkdir()
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        tmp_path / "app.log", "midnight", utc=True, delay=True, maxBytes=12
    )
    handler.namer = lambda name: os.path.join(tmp_path, "old", os.path.basename(name))
    try:
        for number in range(3):
            handler.emit(info_record(f"record {number}"))
    finally:
        handler.close()
    assert _contents(tmp_path / "old") == {
        "app.log.2024-01-10": b"record 0\n",
        "app.log.2024-01-10.1": b"record 1\n",
    }


def test_retention_within_one_period_keeps_the_newest_backups(tmp_path: Path, clock: Clock) -> None:
    """When size rotations and pruning happen in one period, the newest backups survive."""
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        tmp_path / "app.log", "midnight", backupCount=3, utc=True, delay=True, maxBytes=12
    )
    try:
        for number in range(7):
            handler.emit(info_record(f"record {number}"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {
        "app.log": b"record 6\n",
        "app.log.2024-01-10.3": b"record 3\n",
        "app.log.2024-01-10.4": b"record 4\n",
        "app.log.2024-01-10.5": b"record 5\n",
    }


def test_empty_file_is_never_rolled_over_by_size(tmp_path: Path) -> None:
    """gh-116263: a record bigger than maxBytes goes whole into an empty file, no empty backup."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=4, backupCount=2)
    try:
        assert not handler.shouldRollover(info_record("too big"))
        handler.emit(info_record("too big"))
        assert handler.shouldRollover(info_record("next"))
        handler.emit(info_record("next"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {"app.log": b"next\n", "app.log.1": b"too big\n"}


def test_full_file_without_backup_count_reports_rollover_and_keeps_appending(
    tmp_path: Path,
) -> None:
    """As in the stdlib, shouldRollover sees the limit with backupCount=0; nothing is renamed."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=5)
    try:
        handler.emit(info_record("one"))
        assert handler.shouldRollover(info_record("two"))
        handler.emit(info_record("two"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {"app.log": b"one\ntwo\n"}


def test_time_boundary_over_an_empty_file_makes_no_empty_backup(
    tmp_path: Path, clock: Clock
) -> None:
    """A period in which nothing was logged leaves no empty backup behind."""
    handler = mplog.ConcurrentTimedRotatingFileHandler(tmp_path / "app.log", "H", utc=True)
    try:
        clock.now += 3 * HOUR
        assert not handler.shouldRollover(info_record("late"))
        handler.emit(info_record("late"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {"app.log": b"late\n"}


# -- catch-up after a restart --------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "suffix"), [("midnight", "2024-01-10"), ("H", "2024-01-10_13"), ("W0", "2024-01-09")]
)
def test_file_from_an_earlier_period_rotates_at_the_first_record(
    tmp_path: Path, clock: Clock, when: str, suffix: str
) -> None:
    """After a restart, a file last written in an earlier period rotates, named for that period."""
    path = tmp_path / "app.log"
    path.write_bytes(b"before the restart\n")
    os.utime(path, (T0, T0))
    clock.now = T0 + 10 * DAY
    handler = mplog.ConcurrentTimedRotatingFileHandler(path, when, utc=True)
    try:
        assert handler.shouldRollover(info_record("after the restart"))
        handler.emit(info_record("after the restart"))
    finally:
        handler.close()
    os.utime(path, (clock.now, clock.now))  # as if written at the frozen instant

    handler = mplog.ConcurrentTimedRotatingFileHandler(path, when, utc=True)
    try:
        assert not handler.shouldRollover(info_record("same period"))
        handler.emit(info_record("same period"))
    finally:
        handler.close()
    assert _contents(tmp_path) == {
        "app.log": b"after the restart\nsame period\n",
        f"app.log.{suffix}": b"before the restart\n",
    }


# -- computeRollover -----------------------------------------------------------------------

_T = datetime.time
_DT = datetime.datetime

# (when, interval, atTime, current time, expected rollover) in seconds since the epoch,
# a Thursday.  "Wd" without atTime rolls over at the midnight that *ends* day d.
_UTC_ROLLOVERS = [
    ("S", 1, None, 0, 1),
    ("M", 5, None, 30, 330),
    ("H", 1, None, 100, 3700),
    ("D", 2, None, 10, 10 + 2 * DAY),
    ("MIDNIGHT", 1, None, 0, DAY),
    ("MIDNIGHT", 1, None, DAY - 1, DAY),
    ("MIDNIGHT", 1, None, DAY, 2 * DAY),
    ("MIDNIGHT", 3, None, 0, 3 * DAY),
    ("MIDNIGHT", 1, _T(12), 0, 12 * HOUR),
    ("MIDNIGHT", 1, _T(12), 12 * HOUR - 1, 12 * HOUR),
    ("MIDNIGHT", 1, _T(12), 12 * HOUR, 36 * HOUR),
    ("MIDNIGHT", 2, _T(12), 13 * HOUR, 60 * HOUR),
    ("W0", 1, None, 0, 5 * DAY),
    ("W0", 2, None, 0, 12 * DAY),
    ("W3", 1, None, 0, DAY),
    ("W6", 1, None, 0, 4 * DAY),
    ("W6", 1, _T(0), 0, 3 * DAY),
    ("W3", 1, _T(12), 0, 12 * HOUR),
    ("W3", 1, _T(12), 12 * HOUR, 7 * DAY + 12 * HOUR),
]

# The same, in local time of US_EASTERN around its 2012 DST changes.
_LOCAL_ROLLOVERS = [
    ("MIDNIGHT", 1, None, _DT(2012, 3, 10, 23, 59, 59), _DT(2012, 3, 11)),
    ("MIDNIGHT", 1, None, _DT(2012, 3, 11), _DT(2012, 3, 12)),  # a 23-hour day
    ("MIDNIGHT", 1, None, _DT(2012, 11, 4), _DT(2012, 11, 5)),  # a 25-hour day
    ("MIDNIGHT", 3, None, _DT(2012, 3, 9, 12), _DT(2012, 3, 12)),
    ("MIDNIGHT", 1, _T(2, 30), _DT(2012, 3, 10, 2, 30), _DT(2012, 3, 11, 3, 30)),  # no 02:30
    ("MIDNIGHT", 1, _T(2, 30), _DT(2012, 3, 11, 3), _DT(2012, 3, 12, 2, 30)),
    ("MIDNIGHT", 1, _T(1, 30), _DT(2012, 11, 4, 1), _DT(2012, 11, 4, 1, 30)),  # 01:30 EDT
    ("MIDNIGHT", 1, _T(1, 30), _DT(2012, 11, 4, 1, 30), _DT(2012, 11, 5, 1, 30)),
    # In the repeated hour (EST), the stdlib rolls over at the second 01:30.
    ("MIDNIGHT", 1, _T(1, 30), _DT(2012, 11, 4, 1, fold=1), _DT(2012, 11, 4, 1, 30, fold=1)),
    ("W6", 1, None, _DT(2012, 10, 29), _DT(2012, 11, 5)),
    ("W6", 1, _T(2), _DT(2012, 3, 4, 2), _DT(2012, 3, 11, 3)),
    ("W6", 3, _T(12), _DT(2012, 2, 19, 12), _DT(2012, 3, 11, 12)),
    ("D", 1, None, _DT(2012, 3, 10, 12), _DT(2012, 3, 11, 13)),  # 'D' is 86400 s, not a date
    ("H", 1, None, _DT(2012, 3, 11, 1, 30), _DT(2012, 3, 11, 3, 30)),
]


def _rollovers(
    path: Path, when: str, interval: int, at_time: datetime.time | None, utc: bool, current: float
) -> tuple[float, float | None]:
    """mplog's computeRollover and, from Python 3.13 on, the running stdlib's."""
    ours = mplog.ConcurrentTimedRotatingFileHandler(
        path, when, interval, utc=utc, atTime=at_time, delay=True
    )
    theirs = None
    if sys.version_info >= (3, 13):
        stdlib = logging.handlers.TimedRotatingFileHandler(
            path, when, interval, utc=utc, atTime=at_time, delay=True
        )
        theirs = stdlib.computeRollover(current)
        stdlib.close()
    try:
        return ours.computeRollover(current), theirs
    finally:
        ours.close()


@pytest.mark.parametrize(("when", "interval", "at_time", "current", "expected"), _UTC_ROLLOVERS)
def test_compute_rollover_utc(
    tmp_path: Path,
    when: str,
    interval: int,
    at_time: datetime.time | None,
    current: int,
    expected: int,
) -> None:
    """computeRollover gives Python 3.13's instant for fixed UTC epochs."""
    ours, theirs = _rollovers(tmp_path / "app.log", when, interval, at_time, True, current)
    assert ours == expected
    assert theirs in (None, expected)


@needs_tzset
@pytest.mark.parametrize(("when", "interval", "at_time", "current", "expected"), _LOCAL_ROLLOVERS)
def test_compute_rollover_local_time_across_dst(
    tmp_path: Path,
    when: str,
    interval: int,
    at_time: datetime.time | None,
    current: datetime.datetime,
    expected: datetime.datetime,
) -> None:
    """computeRollover keeps Python 3.13's local wall-clock semantics across DST changes."""
    with timezone(US_EASTERN):
        start, end = current.timestamp(), expected.timestamp()
        ours, theirs = _rollovers(tmp_path / "app.log", when, interval, at_time, False, start)
    assert datetime.timedelta(seconds=ours - end) == datetime.timedelta(0)
    assert theirs in (None, end)


# -- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize("when", ["X", "W", "W7", "Wx", "", "midnights", "H1"])
def test_invalid_when_raises_value_error_naming_it(tmp_path: Path, when: str) -> None:
    """An unknown *when* fails at construction, quoting the value, and creates no file."""
    path = tmp_path / "app.log"
    with pytest.raises(ValueError, match=re.escape(f"when={when!r}")):
        mplog.ConcurrentTimedRotatingFileHandler(path, when)
    with pytest.raises(ValueError, match=re.escape(f"when={when!r}")):
        mplog.ConcurrentRotatingFileHandler(path, when=when)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [-1, -0.5, "-5 MB", "ten MB", "10 XB", "", "1e3", "5 MB 2"])
def test_invalid_max_bytes_raises_value_error_naming_it(tmp_path: Path, size: Any) -> None:
    """A negative or unparsable maxBytes fails at construction, quoting the value."""
    path = tmp_path / "app.log"
    with pytest.raises(ValueError, match=re.escape(f"maxBytes={size!r}")):
        mplog.ConcurrentRotatingFileHandler(path, maxBytes=size)
    with pytest.raises(ValueError, match=re.escape(f"maxBytes={size!r}")):
        mplog.ConcurrentTimedRotatingFileHandler(path, maxBytes=size)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [({"backupCount": -1}, "backupCount=-1"), ({"when": "H", "interval": 0}, "interval=0")],
)
def test_invalid_counts_raise_value_error_naming_them(
    tmp_path: Path, kwargs: dict[str, Any], quoted: str
) -> None:
    """A negative backupCount or an interval below 1 fails at construction, quoting the value."""
    with pytest.raises(ValueError, match=quoted):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", **kwargs)


def test_sizes_may_be_given_as_strings(tmp_path: Path) -> None:
    """maxBytes accepts '10 KB' and '2KiB', as powers of 1000 and 1024."""
    handlers = [
        mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", maxBytes="10 KB", delay=True),
        mplog.ConcurrentRotatingFileHandler(tmp_path / "b.log", maxBytes="2KiB", delay=True),
    ]
    assert [handler.maxBytes for handler in handlers] == [10_000, 2048]
    for handler in handlers:
        handler.close()


# -- concurrent-log-handler's keyword arguments --------------------------------------------


@pytest.mark.parametrize(
    "cls", [mplog.ConcurrentRotatingFileHandler, mplog.ConcurrentTimedRotatingFileHandler]
)
def test_use_gzip_means_gzip_compression(
    tmp_path: Path, cls: type[mplog.ConcurrentRotatingFileHandler]
) -> None:
    """concurrent-log-handler's use_gzip=True compresses rotated files with gzip, as there."""
    handler = cls(tmp_path / "app.log", maxBytes=20, backupCount=2, use_gzip=True, compress_delay=0)
    try:
        handler.emit(info_record("first record"))
        handler.emit(info_record("second record"))
    finally:
        handler.close()
    backups = [p for p in _contents(tmp_path) if p != "app.log" and not p.startswith(".__")]
    assert len(backups) == 1
    assert backups[0].endswith(".gz")
    assert gzip.decompress((tmp_path / backups[0]).read_bytes()) == b"first record\n"
    assert (tmp_path / "app.log").read_bytes() == b"second record\n"


@pytest.mark.parametrize(
    "cls", [mplog.ConcurrentRotatingFileHandler, mplog.ConcurrentTimedRotatingFileHandler]
)
def test_every_concurrent_log_handler_keyword_is_accepted(
    tmp_path: Path, cls: type[mplog.ConcurrentRotatingFileHandler]
) -> None:
    """Both classes take all of CLH's keyword arguments together and log with them."""
    handler = cls(
        tmp_path / "app.log",
        use_gzip=False,
        owner=(os.getuid(), os.getgid()),
        chmod=0o640,
        lock_file_directory=tmp_path / "locks",
        newline="",
        terminator="\r\n",
        unicode_error_policy="replace",
        keep_file_open=False,
        debug=False,
    )
    try:
        handler.emit(info_record("record"))
    finally:
        handler.close()
    assert (tmp_path / "app.log").read_bytes() == b"record\r\n"
    assert sorted(os.listdir(tmp_path / "locks")) == [".__app.lock", ".__app.open"]


def _clh() -> Any:
    return pytest.importorskip("concurrent_log_handler")


def _write_both(
    tmp_path: Path, messages: list[str], **kwargs: Any
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Log *messages* through CLH and through mplog with the same keywords; return both dirs."""
    results = []
    for name, cls in (
        ("clh", _clh().ConcurrentRotatingFileHandler),
        ("mplog", mplog.ConcurrentRotatingFileHandler),
    ):
        directory = tmp_path / name
        directory.mkdir()
        handler = cls(str(directory / "app.log"), **kwargs)
        try:
            for message in messages:
                handler.emit(info_record(message))
        finally:
            handler.close()
        results.append(_contents(directory))
    return results[0], results[1]


@pytest.mark.parametrize(
    ("newline", "terminator"),
    [(None, "\n"), ("", "\n"), ("", "\r\n"), ("\n", "\n"), ("\r\n", "\n"), ("\r\n", "\r\n")],
)
def test_newline_and_terminator_mean_what_they_mean_in_clh(
    tmp_path: Path, newline: str | None, terminator: str
) -> None:
    """newline translates line ends as CLH's text stream does, terminator ends each record."""
    clh, ours = _write_both(
        tmp_path,
        ["one line", "two\nlines"],
        encoding="utf-8",
        newline=newline,
        terminator=terminator,
    )
    assert ours == clh
    assert ours["app.log"].startswith(b"one line")


@pytest.mark.parametrize("policy", ["replace", "ignore"])
def test_unicode_error_policy_means_what_it_means_in_clh(tmp_path: Path, policy: str) -> None:
    """Characters the encoding lacks are replaced or dropped exactly as CLH does."""
    clh, ours = _write_both(
        tmp_path, ["caf\u00e9 \u2615 ok"], encoding="ascii", unicode_error_policy=policy
    )
    assert ours == clh
    assert ours["app.log"] in (b"caf? ? ok\n", b"caf  ok\n")


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("option", [{"chmod": 0o640}, {"chmod": 0o604}, {"umask": 0o027}])
def test_chmod_and_umask_mean_what_they_mean_in_clh(tmp_path: Path, option: dict[str, int]) -> None:
    """The log file gets CLH's permission bits, and mplog gives its lock file the same."""
    _write_both(tmp_path, ["record"], **option)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    expected = option.get("chmod", 0o666 & ~option.get("umask", 0))
    assert mode(tmp_path / "clh" / "app.log") == expected
    # (CLH creates its lock file with 0o777 & ~umask: execute bits are no meaning to copy.)
    assert mode(tmp_path / "mplog" / "app.log") == expected
    assert mode(tmp_path / "mplog" / ".__app.lock") == expected


def test_lock_file_directory_means_what_it_means_in_clh(tmp_path: Path) -> None:
    """The lock file has CLH's name, in lock_file_directory, and none is left beside the log."""
    for name, cls in (
        ("clh", _clh().ConcurrentRotatingFileHandler),
        ("mplog", mplog.ConcurrentRotatingFileHandler),
    ):
        (tmp_path / name).mkdir()
        handler = cls(
            str(tmp_path / name / "app.log"), lock_file_directory=str(tmp_path / "locks" / name)
        )
        try:
            handler.emit(info_record("record"))
        finally:
            handler.close()
        assert os.listdir(tmp_path / name) == ["app.log"]
    # the same lock file; mplog adds its presence file (mplog._presence) beside it
    assert sorted(os.listdir(tmp_path / "locks" / "mplog")) == [
        *os.listdir(tmp_path / "locks" / "clh"),
        ".__app.open",
    ]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_owner_means_what_it_means_in_clh(tmp_path: Path) -> None:
    """owner=(user, group) names give the created files to that user and group, as with CLH."""
    import grp
    import pwd

    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    owner = (user.pw_name, grp.getgrgid(user.pw_gid).gr_name)
    _write_both(tmp_path, ["record"], owner=owner)
    for name in ("clh", "mplog"):
        log = (tmp_path / name / "app.log").stat()
        assert (log.st_uid, log.st_gid) == (user.pw_uid, user.pw_gid)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="lists open files via /proc")
def test_keep_file_open_false_holds_no_descriptor_between_records(tmp_path: Path) -> None:
    """With keep_file_open=False the log file is closed again after every record."""
    path = tmp_path / "app.log"

    def open_on_log() -> bool:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the fd listdir used is already closed
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        return str(path) in targets

    for keep_open in (True, False):
        handler = mplog.ConcurrentRotatingFileHandler(path, keep_file_open=keep_open)
        try:
            handler.emit(info_record("record"))
            assert open_on_log() is keep_open
        finally:
            handler.close()
    assert path.read_bytes() == b"record\nrecord\n"


@pytest.mark.parametrize("debug", [True, False])
def test_debug_reports_rotations(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], debug: bool
) -> None:
    """debug=True reports each rotation on standard error; debug=False prints nothing."""
    handler = mplog.ConcurrentRotatingFileHandler(
        tmp_path / "app.log", maxBytes=10, backupCount=1, debug=debug
    )
    try:
        handler.emit(info_record("record 0"))
        handler.emit(info_record("record 1"))
    finally:
        handler.close()
    out, err = capfd.readouterr()
    assert out == ""
    assert (f"{tmp_path / 'app.log.1'}" in err) is debug
    assert (err == "") is not debug


# -- no side effects -----------------------------------------------------------------------

_SNAPSHOT = r"""
import json, logging, logging.config, logging.handlers, sys

def snapshot():
    state = {}
    for module in (logging, logging.config, logging.handlers):
        for name, value in vars(module).items():
            state[f"{module.__name__}.{name}"] = id(value)
            if isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in vars(value).items():
                    state[f"{module.__name__}.{name}.{attr}"] = id(member)
    root = logging.getLogger()
    state["root.handlers"] = [id(handler) for handler in root.handlers]
    state["root.level"] = root.level
    state["handler list"] = len(logging._handlerList)
    state["logger class"] = id(logging.getLoggerClass())
    state["record factory"] = id(logging.getLogRecordFactory())
    return state

before = snapshot()
import mplog
import mplog._config  # and what mplog imports at the first use of a name
import mplog._handler
after = snapshot()
json.dump({"before": before, "after": after}, sys.stdout)
"""


def test_importing_mplog_changes_nothing_in_logging() -> None:
    """Importing mplog rebinds, patches or adds nothing in logging and logging.handlers."""
    done = subprocess.run(
        [sys.executable, "-c", _SNAPSHOT], capture_output=True, text=True, check=True, timeout=60
    )
    states = json.loads(done.stdout)
    before, after = states["before"], states["after"]
    changed = sorted(
        key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
    )
    assert changed == []


def test_suffix_and_extmatch_read_as_in_the_stdlib_and_a_custom_one_is_refused(
    tmp_path: Path,
) -> None:
    """``suffix`` and ``extMatch`` read as TimedRotatingFileHandler's; setting another
    suffix, as stdlib users do after construction, raises an error that names the value
    and points to namer=, instead of being ignored while backups keep the old names."""
    handler = mplog.ConcurrentTimedRotatingFileHandler(str(tmp_path / "app.log"), when="midnight")
    size_only = mplog.ConcurrentRotatingFileHandler(str(tmp_path / "other.log"))
    try:
        stdlib = logging.handlers.TimedRotatingFileHandler(
            str(tmp_path / "stdlib.log"), when="midnight", delay=True
        )
        assert handler.suffix == stdlib.suffix == "%Y-%m-%d"
        assert handler.extMatch is not None
        assert handler.extMatch.search("app.log.2024-01-10")
        assert not handler.extMatch.search("app.log.1")
        assert (size_only.suffix, size_only.extMatch) == (None, None)
        handler.suffix = "%Y-%m-%d"  # the same value: nothing to refuse
        handler.extMatch = handler.extMatch
        with pytest.raises(ValueError, match=r"suffix='%Y%m%d'.*namer="):
            handler.suffix = "%Y%m%d"
        with pytest.raises(ValueError, match=r"extMatch=.*namer="):
            handler.extMatch = re.compile(r"\d{8}")
        assert handler.suffix == "%Y-%m-%d"
    finally:
        handler.close()
        size_only.close()
