"""Retention: which backups go, by count (backupCount), age (max_age) and total size
(max_total_size), in every form, and never a file that is not one of this log's backups.

The rules themselves (``Retention``) are checked on lists of backups; the rest on files.
Retention is applied under the writers' lock at each rotation, before the new backup is
handed to the compressor, so its effect is checked right after the rotating ``emit``
returns, by the backups' uncompressed names (``uncompressed_names``): the background
compressor may be renaming them.  Nothing here asserts a duration.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import mplog
import mplog._backups
import mplog._claims
from helpers import (
    BASE,
    DAY,
    HOUR,
    P0,
    P1,
    RECORD,
    T0,
    Clock,
    ReportingHandler,
    ReportingTimedHandler,
    claimed,
    gzip_file,
    info_record,
    names_in,
    plain_file,
    read_log,
    record_numbers,
    record_numbers_in,
    record_text,
    rotate_once,
    size_named,
    uncompressed_names,
    write_records,
)
from mplog._compression_scheduler import is_claimed
from mplog._retention import Retention, Stored

# -- the rules, on lists of backups ----------------------------------------------------------


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


# -- at a rotation, on the files -------------------------------------------------------------


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_max_age_deletes_old_backups_compressed_or_not(
    tmp_path: Path, compress: str | None
) -> None:
    """At a rotation, backups last written more than max_age ago go, in every form."""
    now, old = time.time(), time.time() - 2 * HOUR
    plain_file(tmp_path / f"{BASE}.1", record_text(3).encode() + b"\n", now)
    gzip_file(tmp_path / f"{BASE}.2.gz", record_text(2).encode() + b"\n", now)
    plain_file(tmp_path / f"{BASE}.3", record_text(1).encode() + b"\n", old)
    gzip_file(tmp_path / f"{BASE}.4.gz", record_text(0).encode() + b"\n", old)
    handler = ReportingHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=10,
        max_age="1 hour",
        compress=compress,
        compress_delay=0,
    )
    try:
        rotate_once(handler, 4)  # shifts to .2 .3.gz .4 .5.gz; .4 and .5.gz are too old
        assert uncompressed_names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    if compress:
        assert record_numbers_in(size_named(tmp_path, ".gz")) == [[2], [3], [4], [5]]
    else:
        assert names_in(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3.gz"]
    assert handler.reports == []


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_max_total_size_keeps_the_newest_backups_that_fit(
    tmp_path: Path, compress: str | None
) -> None:
    """At a rotation, the newest backups whose sizes on disk add up to max_total_size stay;
    the older ones go, compressed or not."""
    sizes = {}
    for number, (maker, name) in enumerate(
        [(gzip_file, "4.gz"), (plain_file, "3"), (gzip_file, "2.gz"), (plain_file, "1")]
    ):
        path = maker(tmp_path / f"{BASE}.{name}", (record_text(number) + "\n").encode() * 20)
        sizes[name] = path.stat().st_size
    # after the shift: .1 (the active file, 1 record), .2, .3.gz, .4, .5.gz
    limit = RECORD + sizes["1"] + sizes["2.gz"] + sizes["3"] // 2
    handler = ReportingHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=10,
        max_total_size=limit,
        compress=compress,
        compress_delay=0,
    )
    try:
        rotate_once(handler, 4)
        assert uncompressed_names(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    assert handler.reports == []
    kept = [f"{BASE}.3.gz", f"{BASE}.2", f"{BASE}.1", BASE]
    if compress:
        kept = [f"{BASE}.3.gz", f"{BASE}.2.gz", f"{BASE}.1.gz", BASE]
    assert names_in(tmp_path) == sorted(kept)
    assert record_numbers_in([tmp_path / name for name in kept]) == [[2] * 20, [3] * 20, [4], [5]]


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
        plain_file(tmp_path / name, b"not ours\n" * 100, old)
    own = f"{BASE}.{P0}.gz" if timed else f"{BASE}.1.gz"
    gzip_file(tmp_path / own, b"old backup\n", old)
    options: dict[str, Any] = {
        "max_age": "1 hour",
        "max_total_size": 1,
        "compress": "gzip",
        "compress_delay": 0,
    }
    if timed:
        handler = ReportingHandler(tmp_path / BASE, maxBytes=RECORD, when="H", utc=True, **options)
    else:
        handler = ReportingHandler(tmp_path / BASE, maxBytes=RECORD, backupCount=5, **options)
    try:
        assert handler.getFilesToDelete() == [str(tmp_path / own)]
        rotate_once(handler, 0)
        # the new backup alone is over max_total_size: it went too
        assert names_in(tmp_path) == sorted([BASE, *foreign])
    finally:
        handler.close()
    assert names_in(tmp_path) == sorted([BASE, *foreign])
    assert record_numbers((tmp_path / BASE).read_bytes()) == [1]
    for name in foreign:
        assert (tmp_path / name).read_bytes() == b"not ours\n" * 100


# -- getFilesToDelete: what the rules would delete -------------------------------------------


def test_get_files_to_delete_lists_what_the_rules_delete_oldest_first(tmp_path: Path) -> None:
    """getFilesToDelete() names every file of the expired backups (both forms of one left by
    an interrupted compression), oldest first; it deletes nothing."""
    now, old = time.time(), time.time() - 2 * DAY
    plain_file(tmp_path / f"{BASE}.1", b"new\n", now)
    gzip_file(tmp_path / f"{BASE}.2.gz", b"old\n", old)
    plain_file(tmp_path / f"{BASE}.3", b"older\n", old)
    gzip_file(tmp_path / f"{BASE}.3.gz", b"older\n", old)
    gzip_file(tmp_path / f"{BASE}.7.gz", b"oldest, beyond backupCount\n", old)
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=100, backupCount=5, max_age="1 day", delay=True
    )
    try:
        expected = [f"{BASE}.3", f"{BASE}.3.gz", f"{BASE}.2.gz"]
        assert handler.getFilesToDelete() == [str(tmp_path / name) for name in expected]
        os.utime(tmp_path / f"{BASE}.2.gz", (now, now))
        assert handler.getFilesToDelete() == [str(tmp_path / name) for name in expected[:2]]
        assert len(names_in(tmp_path)) == 5
    finally:
        handler.close()


def test_get_files_to_delete_with_time_names_counts_groups(tmp_path: Path, clock: Clock) -> None:
    """Time naming: backupCount counts a backup once whatever its forms; beyond it, oldest go."""
    for name in [f"{P0}", f"{P0}.1", f"{P0}.1.gz", f"{P0}.2.gz", f"{P1}"]:
        plain_file(tmp_path / f"{BASE}.{name}", b"x\n", T0)
    handler = ReportingHandler(tmp_path / BASE, when="H", utc=True, backupCount=2, delay=True)
    try:
        expected = [f"{BASE}.{P0}", f"{BASE}.{P0}.1", f"{BASE}.{P0}.1.gz"]
        assert handler.getFilesToDelete() == [str(tmp_path / name) for name in expected]
    finally:
        handler.close()


# -- backups being compressed, and failures --------------------------------------------------


def test_a_claimed_backup_survives_retention_until_released(tmp_path: Path) -> None:
    """A backup another process is compressing (it holds flock on it) is not deleted by max_age
    while claimed, even as it shifts; after release, the next rotation deletes it."""
    old = time.time() - 2 * HOUR
    for number in (1, 2, 3):
        plain_file(tmp_path / f"{BASE}.{number}", f"old {number}\n".encode(), old)
    held = tmp_path / f"{BASE}.3"
    inode = held.stat().st_ino
    handler = ReportingHandler(tmp_path / BASE, maxBytes=RECORD, backupCount=10, max_age="1 hour")
    try:
        with claimed(held):
            assert is_claimed(str(held))
            assert not is_claimed(str(tmp_path / f"{BASE}.2"))
            rotate_once(handler, 0)  # .3 -> .4, claimed: kept; the old .2 and .3 go
            assert names_in(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.4"]
            assert (tmp_path / f"{BASE}.4").stat().st_ino == inode
            handler.emit(info_record(record_text(2)))  # another rotation while still claimed
            assert (tmp_path / f"{BASE}.4").stat().st_ino == inode
        assert not is_claimed(str(tmp_path / f"{BASE}.4"))
        handler.emit(info_record(record_text(3)))
        assert not (tmp_path / f"{BASE}.4").exists()
        assert names_in(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2", f"{BASE}.3"]
    finally:
        handler.close()
    assert handler.reports == []


def test_an_unlockable_backup_is_still_rotated_past_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where flock fails outright (EBADF for a read-only descriptor on NFS), the numbered
    shift still drops the backup past backupCount and nothing is lost."""
    real = mplog._claims.try_lock_descriptor

    def refusing(fd: int) -> bool:
        if os.fstat(fd).st_size and not os.path.samestat(os.fstat(fd), os.stat(tmp_path / BASE)):
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real(fd)

    monkeypatch.setattr(mplog._claims, "try_lock_descriptor", refusing)
    handler = ReportingHandler(tmp_path / BASE, maxBytes=RECORD, backupCount=2)
    try:
        write_records(handler, range(6))
    finally:
        handler.close()
    assert handler.reports == []
    assert names_in(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2"]
    assert [record_numbers(read_log(tmp_path / n)) for n in (f"{BASE}.2", f"{BASE}.1", BASE)] == [
        [3],
        [4],
        [5],
    ]


def test_a_retention_failure_costs_no_record(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If pruning fails (a backup that cannot be deleted, a file system refusing the
    claim check), the rotation still completes and the record is written; the failure
    is reported once, not at every rotation."""

    def broken_prune(self: object, busy: object) -> list[str]:
        raise PermissionError(errno.EACCES, "Permission denied", "app.log.old")

    monkeypatch.setattr(mplog._backups.Backups, "prune", broken_prune)
    handler = ReportingTimedHandler(tmp_path / BASE, "S", backupCount=1, delay=True)
    try:
        for number in range(6):
            write_records(handler, [number])
            clock.now += 1.5  # every record in a new period: a rotation each time
    finally:
        handler.close()
    found = sorted(
        n for name in names_in(tmp_path) for n in record_numbers(read_log(tmp_path / name))
    )
    assert found == list(range(6))
    assert len(handler.reports) == 1
    assert "retention" in handler.reports[0][0]
