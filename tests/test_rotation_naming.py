"""How backups are named once some of them are compressed: size-named backups shift as one
sequence (.1 the newest) whatever their form, time-named ones take counters after those
of their period already there, compressed or not, and a custom namer's names get the
codec's suffix and are still found by retention.

Compression runs in a background thread: ``close()`` waits for it and compresses
whatever is left, so a test that needs compressed backups before the next rotation
closes the handler and opens a new one (a "session"); while it may run, the tests look
at backups by their uncompressed names (``uncompressed_names``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    BASE,
    HOUR,
    P0,
    P1,
    RECORD,
    T0,
    Clock,
    ReportingHandler,
    ReportingTimedHandler,
    gzip_file,
    info_record,
    log_last_namer,
    names_in,
    plain_file,
    record_numbers_in,
    record_text,
    size_named,
    uncompressed_names,
    write_records,
)

# -- size naming -----------------------------------------------------------------------------


def test_size_naming_shifts_compressed_backups_in_order(tmp_path: Path) -> None:
    """Session after session (each one compressing on close), .1.gz is the newest, the order
    survives every shift, and backupCount=3 counts the compressed backups: the oldest go."""
    number = 0
    for session in range(6):
        handler = ReportingHandler(
            tmp_path / BASE, maxBytes=2 * RECORD, backupCount=3, compress="gzip", compress_delay=0
        )
        try:
            write_records(handler, range(number, number + 2 if session else 3))
            number += 2 if session else 3
        finally:
            handler.close()
        assert handler.reports == []
        files = size_named(tmp_path, ".gz")
        assert len(files) == min(session + 1, 3) + 1
        contents = record_numbers_in(files)
        flat = [n for numbers in contents for n in numbers]
        assert flat == list(range(number - len(flat), number)), "not the newest, in order"
        assert all(len(numbers) == 2 for numbers in contents[:-1])


def test_mixed_forms_shift_together_and_the_oldest_goes_in_every_form(tmp_path: Path) -> None:
    """.1.gz and a plain .2 (an old backup not compressed yet) shift as one sequence; with
    backupCount=3, the next rotation deletes the oldest, compressed or not."""
    plain_file(tmp_path / f"{BASE}.2", record_text(0).encode() + b"\n")
    gzip_file(tmp_path / f"{BASE}.1.gz", record_text(1).encode() + b"\n")
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=3, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(info_record(record_text(2)))
        handler.emit(info_record(record_text(3)))  # rotates: .2 -> .3, .1.gz -> .2.gz, active -> .1
        assert uncompressed_names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    assert record_numbers_in(size_named(tmp_path, ".gz")) == [[0], [1], [2], [3]]
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=3, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(info_record(record_text(4)))  # rotates: .3.gz (record 0) goes
    finally:
        handler.close()
    assert record_numbers_in(size_named(tmp_path, ".gz")) == [[1], [2], [3], [4]]


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
    gzip_file(tmp_path / f"{BASE}.{P0}.gz", b"older\n")

    def session(numbers: Sequence[int], at: float) -> list[tuple[str, Any]]:
        clock.now = at
        handler = ReportingTimedHandler(
            tmp_path / BASE,
            "H",
            utc=True,
            backupCount=3,
            maxBytes=RECORD,
            compress="gzip",
            compress_delay=0,
        )
        try:
            write_records(handler, numbers)
        finally:
            handler.close()
        _touch_active(tmp_path, clock)  # the next handler reads when it was last written
        return handler.reports

    assert session([0, 1], T0) == []  # record 0 goes to app.log.<P0>.1
    assert names_in(tmp_path) == [BASE, f"{BASE}.{P0}.1.gz", f"{BASE}.{P0}.gz"]
    assert session([2], T0 + 60) == []  # record 1 goes to .2, after the compressed .1
    assert names_in(tmp_path) == [BASE, f"{BASE}.{P0}.1.gz", f"{BASE}.{P0}.2.gz", f"{BASE}.{P0}.gz"]
    # An hour after the last write, a time rotation: record 2 is still of P0 (.3), and
    # backupCount=3 drops .gz.  Record 3 then rotates by size into P1's first name.
    assert session([3, 4], T0 + 60 + HOUR + 5) == []
    expected = [f"{BASE}.{P0}.2.gz", f"{BASE}.{P0}.3.gz", f"{BASE}.{P1}.gz"]
    assert names_in(tmp_path) == sorted([BASE, *expected])
    assert record_numbers_in([tmp_path / name for name in [*expected, BASE]]) == [
        [1],
        [2],
        [3],
        [4],
    ]


def test_time_naming_in_one_session_compresses_every_backup(tmp_path: Path, clock: Clock) -> None:
    """Size and time rotations in one handler's life: after close, every backup is compressed,
    named for its period with counters in rotation order, and holds its records in order."""
    handler = ReportingTimedHandler(
        tmp_path / BASE,
        "H",
        utc=True,
        backupCount=0,
        maxBytes=3 * RECORD,
        compress="gzip",
        compress_delay=0,
    )
    try:
        write_records(handler, range(7))  # P0: 3 + 3 + 1 records
        clock.now = T0 + HOUR
        write_records(handler, range(7, 12))  # record 7 rotates by time; then 3 + 2 in P1
    finally:
        handler.close()
    assert handler.reports == []
    expected = [f"{BASE}.{P0}.gz", f"{BASE}.{P0}.1.gz", f"{BASE}.{P0}.2.gz", f"{BASE}.{P1}.gz"]
    assert names_in(tmp_path) == sorted([BASE, *expected])
    files = [tmp_path / name for name in [*expected, BASE]]
    assert record_numbers_in(files) == [[0, 1, 2], [3, 4, 5], [6], [7, 8, 9], [10, 11]]


# -- a custom namer --------------------------------------------------------------------------


@pytest.mark.parametrize("timed", [False, True], ids=["size-names", "time-names"])
def test_backups_named_by_a_custom_namer_are_compressed_and_pruned(
    tmp_path: Path, clock: Clock, timed: bool
) -> None:
    """The namer's names get the suffix (app.3.log.gz) and retention finds and deletes them."""

    def open_handler() -> ReportingHandler:
        _touch_active(tmp_path, clock)
        extra: dict[str, Any] = {"when": "H", "utc": True} if timed else {"backupCount": 9}
        handler = ReportingHandler(
            tmp_path / BASE,
            maxBytes=RECORD,
            max_age="1 hour",
            compress="gzip",
            compress_delay=0,
            **extra,
        )
        handler.namer = log_last_namer
        return handler

    handler = open_handler()
    try:
        write_records(handler, range(4))
    finally:
        handler.close()
    if timed:
        names = [f"app.{P0}.log.gz", f"app.{P0}.1.log.gz", f"app.{P0}.2.log.gz"]
    else:
        names = ["app.3.log.gz", "app.2.log.gz", "app.1.log.gz"]
    assert names_in(tmp_path) == sorted([BASE, *names])
    assert record_numbers_in([tmp_path / name for name in [*names, BASE]]) == [[0], [1], [2], [3]]
    for name in names:
        os.utime(tmp_path / name, (T0 - 2 * HOUR, T0 - 2 * HOUR))
    os.utime(tmp_path / BASE, (T0, T0))
    handler = open_handler()
    try:
        # time.time() is frozen at T0: T0 - 2 h is too old, whatever the real date is
        assert sorted(handler.getFilesToDelete()) == sorted(str(tmp_path / n) for n in names)
        write_records(handler, [4])  # rotates record 3 out; the three old backups go
    finally:
        handler.close()
    new = f"app.{P0}.3.log.gz" if timed else "app.1.log.gz"
    assert names_in(tmp_path) == sorted([BASE, new])
    assert record_numbers_in([tmp_path / new, tmp_path / BASE]) == [[3], [4]]
