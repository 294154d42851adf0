"""The sync write path's fast path: what emit may skip between checks, and what it may not.

Between path checks (every watch_interval) emit appends on the lock file's header
words without asking the rotation policy (:meth:`Rollover.prepare`).  These tests
pin what must still happen at the very next record, however long the watch
interval: a time rotation that is due, a rolloverAt set by hand, the handler's
filters, and, after a failed write, only the handler's own bytes cut off.  Time is
frozen (the ``clock`` fixture), so every record of a test falls inside one watch
interval.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fault_workers
import mplog
from helpers import Clock, RecordingHandler, info_record

WATCH = 3600.0  # seconds: longer than any rotation period below, so never the reason


def _backups(path: Path) -> list[str]:
    """The contents of the backups of *path*, in name order."""
    return [p.read_text() for p in sorted(path.parent.glob(path.name + ".*"))]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, its handlers closed and removed afterwards."""
    log = logging.getLogger("test_fast_path")
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()


@pytest.mark.parametrize("late", [0.0, 1.0], ids=["at-the-boundary", "after-it"])
def test_a_time_rotation_due_before_the_next_path_check_is_not_postponed(
    tmp_path: Path, clock: Clock, late: float
) -> None:
    """The first record at (or after) the time boundary goes to a new file, even when
    the next path check is an hour away."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        path, when="M", utc=True, watch_interval=WATCH
    )
    try:
        handler.emit(info_record("one"))
        clock.now = handler.rolloverAt + late
        handler.emit(info_record("two"))
    finally:
        handler.close()
    assert _backups(path) == ["one\n"]
    assert path.read_text() == "two\n"


def test_setting_rollover_at_takes_effect_at_the_next_record(tmp_path: Path, clock: Clock) -> None:
    """rolloverAt is the stdlib's attribute: moving it to now makes the next record
    rotate, as TimedRotatingFileHandler does, not the first one after the path check."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentTimedRotatingFileHandler(
        path, when="H", utc=True, watch_interval=WATCH
    )
    try:
        handler.emit(info_record("one"))
        handler.emit(info_record("two"))
        handler.rolloverAt = clock.now
        handler.emit(info_record("three"))
    finally:
        handler.close()
    assert _backups(path) == ["one\ntwo\n"]
    assert path.read_text() == "three\n"


def test_a_failed_write_cuts_off_no_bytes_it_did_not_write(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails outright (disk full) leaves nothing for the next record to cut
    off: a line another program appended in between is kept."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, watch_interval=WATCH)
    real_write = os.write

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        handler.emit(info_record("one"))
        with path.open("a") as other:  # another program, without mplog's lock
            other.write("from another program\n")
        monkeypatch.setattr(os, "write", disk_full)
        handler.emit(info_record("x" * 1000))  # longer than the other program's line
        monkeypatch.setattr(os, "write", real_write)
        handler.emit(info_record("after"))
    finally:
        monkeypatch.setattr(os, "write", real_write)
        handler.close()
    assert [type(e) for e in handler.errors_seen] == [OSError]
    assert path.read_text() == "one\nfrom another program\nafter\n"


def test_the_handlers_filters_still_decide_which_records_are_written(
    tmp_path: Path, logger: logging.Logger
) -> None:
    """handle() is mplog's own (to take the handler lock cheaply): a filter added to
    the handler still drops the records it rejects."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path)
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    logger.addHandler(handler)
    logger.info("one")
    logger.info("a secret")
    logger.info("two")
    assert path.read_text() == "one\ntwo\n"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="filters return records since 3.12")
def test_a_filter_may_replace_the_record_it_passes(tmp_path: Path, logger: logging.Logger) -> None:
    """Since Python 3.12 a filter may return a replacement record: the handler writes
    that one, and the logger's other handlers still get the original."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path)

    def redact(record: logging.LogRecord) -> logging.LogRecord:
        copy = logging.makeLogRecord(record.__dict__)
        copy.msg, copy.args = "[redacted]", None
        return copy

    seen: list[str] = []

    class Collecting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler.addFilter(redact)  # type: ignore[arg-type, unused-ignore]  # typeshed < 3.12
    logger.addHandler(handler)
    logger.addHandler(Collecting())
    logger.info("password=%s", "hunter2")
    assert path.read_text() == "[redacted]\n"
    assert seen == ["password=hunter2"]


# -- guards that only the multi-process SIGKILL tests caught, pinned in one process ------


def test_another_handlers_rotation_is_followed_at_the_next_record(
    tmp_path: Path, clock: Clock
) -> None:
    """A rotation by another handler (process) is seen through the shared generation: the
    next record goes to the new file, not to the backup, without waiting for a path check."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, backupCount=1, watch_interval=WATCH)
    theirs = mplog.ConcurrentRotatingFileHandler(path, backupCount=1, watch_interval=WATCH)
    try:
        ours.emit(info_record("one"))
        theirs.doRollover()
        ours.emit(info_record("two"))
    finally:
        ours.close()
        theirs.close()
    assert _backups(path) == ["one\n"]
    assert path.read_text() == "two\n"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_record_torn_by_a_writer_that_died_is_cut_off_before_the_next(
    tmp_path: Path, clock: Clock
) -> None:
    """A process that dies half-way through a record (SIGKILL can end a large write
    part-way) leaves the record marked in flight: the next writer cuts it off first,
    even with its own next path check an hour away."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, watch_interval=WATCH)
    try:
        ours.emit(info_record("one"))
        fault_workers.fork_a_writer_that_dies_mid_record(path, watch_interval=WATCH)
        ours.emit(info_record("four"))
    finally:
        ours.close()
    assert path.read_text() == "one\ntwo\nfour\n"


def test_a_subclass_format_is_used(tmp_path: Path) -> None:
    """emit formats inline with the handler's formatter only when format() is
    Handler's own: a subclass that overrides format() is still called."""

    class Shouting(mplog.ConcurrentRotatingFileHandler):
        def format(self, record: logging.LogRecord) -> str:
            return super().format(record).upper()

    path = tmp_path / "app.log"
    handler = Shouting(path)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(message)s"))
    try:
        handler.emit(info_record("quiet"))
        handler.emit(info_record("still quiet"))
    finally:
        handler.close()
    assert path.read_text() == "INFO:QUIET\nINFO:STILL QUIET\n"


def test_a_rotation_names_backups_only_up_to_the_first_missing_one(tmp_path: Path) -> None:
    """With a large backupCount a rotation costs what exists, not backupCount: the
    namer is asked for .1 ... up to the first free number, and every backup shifts."""
    path = tmp_path / "app.log"
    asked: list[str] = []
    handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=8, backupCount=1000)

    def namer(default: str) -> str:
        asked.append(default.rsplit(".", 1)[1])
        return default

    handler.namer = namer
    try:
        for i in range(4):
            handler.emit(info_record(f"record {i}"))  # 9 bytes: each one rotates the last
    finally:
        handler.close()
    assert [p.read_text() for p in (path.with_name(f"app.log.{n}") for n in (3, 2, 1))] == [
        "record 0\n",
        "record 1\n",
        "record 2\n",
    ]
    assert path.read_text() == "record 3\n"
    # Rotations found 0, 1 and 2 backups: names .1; .1 .2; .1 .2 .3
    assert asked == ["1", "1", "2", "1", "2", "3"]


def test_handle_returns_what_the_stdlibs_handle_returns(tmp_path: Path) -> None:
    """handle() skips filter() while the handler has no filters: it still returns what
    logging.Handler.handle returns on this Python (True before 3.12, the record since),
    and False for a record a filter rejects."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log")
    stock = logging.Handler()
    stock.emit = lambda record: None  # type: ignore[method-assign]
    record = info_record("one")
    try:
        assert handler.handle(record) == stock.handle(record) is not False
        for each in (handler, stock):
            each.addFilter(lambda record: False)
        assert handler.handle(record) is stock.handle(record) is False
    finally:
        handler.close()
    assert (tmp_path / "app.log").read_text() == "one\n"


def test_a_subclasss_own_filter_method_still_decides(tmp_path: Path) -> None:
    """A subclass that overrides filter() itself, with no filters added, is still asked."""

    class Quiet(mplog.ConcurrentRotatingFileHandler):
        def filter(self, record: logging.LogRecord) -> bool:
            return "secret" not in record.getMessage()

    path = tmp_path / "app.log"
    handler = Quiet(path)
    try:
        assert handler.handle(info_record("a secret")) is False
        handler.handle(info_record("one"))
    finally:
        handler.close()
    assert path.read_text() == "one\n"
