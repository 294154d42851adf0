"""What listing and finding numbered backups costs follows the files on disk, not backupCount.

The work is counted (namer calls, directory listings), never timed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import pytest

import mplog
from mplog._backups import Backup, Backups, list_numbered
from mplog._retention import Retention

SUFFIXES = (".gz", ".bz2")
COUNTS = [10, 1000, 100_000]


class CountingNamer:
    """A namer that counts its calls and applies *rename* to the default name."""

    def __init__(self, rename: Callable[[str], str] = lambda name: name) -> None:
        self.calls = 0
        self.rename = rename

    def __call__(self, default: str) -> str:
        self.calls += 1
        return self.rename(default)


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every directory os.listdir is asked for."""
    seen: list[str] = []
    real = os.listdir

    def counting(path: str = ".") -> list[str]:
        seen.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", counting)
    return seen


def _touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"x\n")


def _every_number(base: str, count: int, namer: Callable[[str], str]) -> list[Backup]:
    """The reference: name every number up to *count* and look each name up."""
    found = [
        Backup("", -n, namer(f"{base}.{n}") + suffix, namer(f"{base}.{n}"), suffix)
        for n in range(1, count + 1)
        for suffix in ("", *SUFFIXES)
        if os.path.lexists(namer(f"{base}.{n}") + suffix)
    ]
    return sorted(found)


# Files of this log, of other logs and look-alikes, all in one directory.
OURS = ["app.log.1", "app.log.2.gz", "app.log.3", "app.log.3.gz", "app.log.7.bz2", "app.log.9"]
FOREIGN = [
    "app.log",
    "app.log.b.1",
    "app.log.1.bak",
    "app.log.1.gz.bak",
    "app.log.01",
    "app.log.0",
    "app.log.-1",
    "app.log.1.1",
    "xapp.log.2",
    "other.log.3.gz",
    "app.log.2024-01-10",
    ".__app.lock",
]


@pytest.mark.parametrize("count", COUNTS)
def test_numbered_backups_cost_one_listing_and_a_namer_call_per_number_on_disk(
    tmp_path: Path, listings: list[str], count: int
) -> None:
    """Whatever backupCount allows, the backups are found with one listing and one namer
    call per number written in an entry, plus three sample names."""
    _touch(tmp_path, *OURS, *FOREIGN)
    namer = CountingNamer()
    found = list_numbered(str(tmp_path / "app.log"), count, namer, SUFFIXES)
    assert [os.path.basename(b.path) for b in found] == [
        "app.log.9",
        "app.log.7.bz2",
        "app.log.3",
        "app.log.3.gz",
        "app.log.2.gz",
        "app.log.1",
    ]
    assert listings == [str(tmp_path)]
    numbers_on_disk = {0, 1, 2, 3, 7, 9, 10, 2024}  # written in some entry
    samples = {1, (count + 1) // 2, count}
    in_range = {n for n in numbers_on_disk | samples if 1 <= n <= count}
    assert namer.calls == len(in_range) <= 10


@pytest.mark.parametrize(
    "rename",
    [
        pytest.param(lambda name: name, id="default"),
        pytest.param(lambda name: name.replace("app.log.", "app.", 1) + ".log", id="app.3.log"),
        pytest.param(
            lambda name: name[: name.rindex(".") + 1] + name[name.rindex(".") + 1 :].zfill(3),
            id="zero-padded",
        ),
        pytest.param(lambda name: name + ".gz", id="namer-adds-the-suffix"),
    ],
)
def test_listing_finds_exactly_what_naming_every_number_finds(
    tmp_path: Path, rename: Callable[[str], str]
) -> None:
    """The listing gives the same backups, compressed forms included, as making the name of
    every number up to backupCount would; other logs' files and look-alikes are left out."""
    base = str(tmp_path / "app.log")
    count = 12
    ours = [
        os.path.basename(rename(f"{base}.{n}")) + suffix
        for n, suffix in [(1, ""), (2, ".gz"), (3, ""), (3, ".gz"), (7, ".bz2"), (12, "")]
    ]
    beyond = [os.path.basename(rename(f"{base}.{n}")) for n in (13, 100)]  # past the count
    _touch(tmp_path, *ours, *beyond, *FOREIGN)
    expected = _every_number(base, count, rename)
    assert len(expected) == len(ours)
    assert list_numbered(base, count, rename, SUFFIXES) == expected


def test_a_namer_hiding_the_number_still_finds_every_backup(tmp_path: Path) -> None:
    """A namer whose names do not show the number (here: letters) is asked for each number;
    its backups are found all the same."""
    letters = "abcdefghijkl"

    def rename(name: str) -> str:
        head, number = name.rsplit(".", 1)
        return f"{head}-{letters[int(number) - 1]}"

    base = str(tmp_path / "app.log")
    _touch(tmp_path, "app.log-a", "app.log-c.gz", "app.log-l", "app.log.1")
    expected = _every_number(base, 12, rename)
    assert [os.path.basename(b.path) for b in expected] == [
        "app.log-l",
        "app.log-c.gz",
        "app.log-a",
    ]
    assert list_numbered(base, 12, rename, SUFFIXES) == expected


def test_a_namer_filing_backups_elsewhere_is_listed_there(tmp_path: Path) -> None:
    """Backups the namer puts in another directory are found by listing that directory."""
    old = tmp_path / "old"
    old.mkdir()
    _touch(old, "app.log.1", "app.log.2.gz", "other.log.1")
    _touch(tmp_path, "app.log.3")  # the default name, not the namer's

    def rename(name: str) -> str:
        return str(old / os.path.basename(name))

    found = list_numbered(str(tmp_path / "app.log"), 100_000, rename, SUFFIXES)
    assert [b.path for b in found] == [str(old / "app.log.2.gz"), str(old / "app.log.1")]
    assert list_numbered(str(tmp_path / "gone" / "app.log"), 10, lambda n: n, SUFFIXES) == []


def _backups(base: Path, count: int, namer: CountingNamer) -> Backups:
    return Backups(str(base), namer, lambda: count, None, SUFFIXES, Retention())


@pytest.mark.parametrize("count", COUNTS)
def test_locate_looks_only_at_the_backups_there_are(
    tmp_path: Path, listings: list[str], count: int
) -> None:
    """The compressor's look-up by inode tries the hint, then each uncompressed backup on
    disk: the same work for every backupCount."""
    _touch(tmp_path, "app.log.1", "app.log.2", "app.log.3.gz", *FOREIGN)
    st = os.stat(tmp_path / "app.log.2")
    namer = CountingNamer()
    backups = _backups(tmp_path / "app.log", count, namer)

    assert backups.locate((st.st_dev, st.st_ino), str(tmp_path / "app.log.2")) is not None
    assert (namer.calls, listings) == (0, [])  # the hint was right: nothing listed

    # shifted since the hint was taken
    assert backups.locate((st.st_dev, st.st_ino), str(tmp_path / "app.log.1")) == str(
        tmp_path / "app.log.2"
    )
    assert listings == [str(tmp_path)]
    calls_when_found = namer.calls
    assert backups.locate((st.st_dev, -1), str(tmp_path / "app.log.1")) is None  # pruned
    assert namer.calls == 2 * calls_when_found <= 2 * 10


def _rotations_namer_calls(directory: Path, count: int) -> list[int]:
    """Namer calls made by each of 30 rotations, with max_total_size keeping 3 backups."""
    handler = mplog.ConcurrentRotatingFileHandler(
        directory / "app.log", maxBytes=20, backupCount=count, max_total_size=3 * 16
    )
    namer = CountingNamer()
    handler.namer = namer
    calls = []
    try:
        for i in range(30):
            before = namer.calls
            record = logging.makeLogRecord({"msg": f"record {i:05d}", "levelno": logging.INFO})
            handler.emit(record)  # 13 bytes: each one after the first rotates
            calls.append(namer.calls - before)
    finally:
        handler.close()
    kept = [f"app.log.{n}" for n in (1, 2, 3)]  # 3 x 13 bytes <= max_total_size < 4 x 13
    assert sorted(os.listdir(directory)) == [".__app.lock", ".__app.open", "app.log", *kept]
    return calls


def test_rotation_with_retention_asks_the_namer_the_same_for_every_backup_count(
    tmp_path: Path,
) -> None:
    """A handler rotating with max_total_size makes the same namer calls, record by record,
    with backupCount 10, 1000 and 100,000: the cost follows the three backups kept."""
    calls = {}
    for count in COUNTS:
        directory = tmp_path / str(count)
        directory.mkdir()
        calls[count] = _rotations_namer_calls(directory, count)
    assert calls[10] == calls[1000] == calls[100_000]
    assert max(calls[100_000]) <= 12  # naming .1 to .4 to shift, then listing for retention
