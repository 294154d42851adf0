"""Migrating from concurrent-log-handler: old and new processes on one log lose nothing.

concurrent-log-handler locks the same lock file but does not update mplog's shared
state: it appends without publishing the size and rotates without bumping the
generation.  mplog notices (an empty lock file older than a moment, or a file grown
behind the published size) and then checks the path before every record, as
concurrent-log-handler does, until an hour after the last sign of it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import fleet_workers  # noqa: E402 - after the sys.path entry spawn children need
import mplog  # noqa: E402
from helpers import Clock, assert_exactly_once, make_record, read_log  # noqa: E402
from mplog._header import SharedState  # noqa: E402

pytest.importorskip("concurrent_log_handler")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("first", ["clh", "mplog"], ids=["clh-first", "mplog-first"])
def test_old_and_new_processes_side_by_side_lose_nothing(
    tmp_path: Path, gzip: bool, first: str
) -> None:
    """Two concurrent-log-handler processes and two mplog processes write one log that
    rotates every few dozen records (and, with gzip, is compressed by both libraries):
    every record of every process is in the files exactly once, none torn."""
    path = str(tmp_path / "app.log")
    count = 2000
    clh = {"maxBytes": 8192, "backupCount": 400, "use_gzip": gzip}
    ours = {
        "maxBytes": 8192,
        "backupCount": 400,
        "compress": "gzip" if gzip else None,
        "compress_delay": 0,
    }
    ctx = multiprocessing.get_context("fork")
    if first == "clh":  # the lock file exists, made by concurrent-log-handler
        fleet_workers.clh_writer(path, clh, 9, 1, ctx.Barrier(1))
        expected = {9: 1}
    else:  # mplog made it: concurrent-log-handler joins a running mplog fleet
        fleet_workers.mplog_writer(path, ours, 9, 1, ctx.Barrier(1))
        expected = {9: 1}
    barrier = ctx.Barrier(4)
    # The mplog processes close (their last compression sweep) once concurrent-log-handler
    # has stopped rotating: a backup it shifts after mplog's last sweep stays plain until
    # an mplog process sweeps again, which this test does not run.
    clh_done = ctx.Barrier(4)
    processes = [
        ctx.Process(
            target=fleet_workers.clh_writer,
            args=(path, clh, w, count, barrier),
            kwargs={"after_close": clh_done},
        )
        for w in (0, 1)
    ] + [
        ctx.Process(
            target=fleet_workers.mplog_writer,
            args=(path, ours, w, count, barrier),
            kwargs={"before_close": clh_done},
        )
        for w in (2, 3)
    ]
    fleet_workers.run_fleet(processes, barrier, clh_done)
    found = fleet_workers.read_fleet(tmp_path)
    fleet_workers.assert_each_once(found, {**expected, 0: count, 1: count, 2: count, 3: count})
    assert len(list(tmp_path.glob("app.log.*"))) > 20, "expected many rotations"
    if gzip:  # every backup compressed, by one library or the other
        assert not [p for p in tmp_path.glob("app.log.*") if p.suffix != ".gz"]


def test_a_lock_file_made_by_concurrent_log_handler_starts_a_mixed_fleet(
    tmp_path: Path,
) -> None:
    """An empty lock file that has existed for a while was made by concurrent-log-handler
    (mplog gives its lock files a header at once): mplog then checks the path before
    every record, so a rotation by the old library is followed at the next record."""
    from concurrent_log_handler import ConcurrentRotatingFileHandler as CLH

    path = tmp_path / "app.log"
    lock = tmp_path / ".__app.lock"
    old = CLH(str(path), maxBytes=10, backupCount=5)
    old.emit(make_record("old 1"))
    stamp = lock.stat().st_mtime - 60  # as if concurrent-log-handler had run for a minute
    os.utime(lock, (stamp, stamp))
    new = mplog.ConcurrentRotatingFileHandler(path, maxBytes=1000, backupCount=5)
    try:
        new.emit(make_record("new 1"))
        with new._lock as shared:
            assert shared.foreign_until > 0
        old.emit(make_record("old 2"))  # rotates first: app.log -> app.log.1
        new.emit(make_record("new 2"))  # must follow at once, not after watch_interval
    finally:
        old.close()
        new.close()
    assert (tmp_path / "app.log.1").read_text() == "old 1\nnew 1\n"
    assert path.read_text() == "old 2\nnew 2\n"


def test_a_file_grown_behind_the_shared_size_starts_a_mixed_fleet(tmp_path: Path) -> None:
    """Another writer appending without mplog (the size mplog published falls behind) is
    noticed at the next path check; from then on every mplog process checks the path
    before each record, so a rename by that writer is followed at the next record."""
    path = tmp_path / "app.log"
    ours = mplog.ConcurrentRotatingFileHandler(path, watch_interval=0)
    theirs = mplog.ConcurrentRotatingFileHandler(path, watch_interval=3600)
    try:
        ours.emit(make_record("one"))
        theirs.emit(make_record("two"))  # arms its fast path for an hour
        with path.open("a") as f:
            f.write("foreign\n")
        ours.emit(make_record("three"))  # checks the path: grown behind the published size
        path.rename(tmp_path / "app.log.1")  # as the foreign writer's rotation would
        theirs.emit(make_record("four"))  # an hour before its next watch, yet it follows
    finally:
        ours.close()
        theirs.close()
    assert (tmp_path / "app.log.1").read_text() == "one\ntwo\nforeign\nthree\n"
    assert path.read_text() == "four\n"


def test_shared_state_records_foreign_writers_for_an_hour(tmp_path: Path) -> None:
    """saw_foreign sets the window an hour ahead and bumps the generation only when a
    window starts, so every writer checks once and then keeps checking."""
    lock = mplog._lock.InterProcessLock(str(tmp_path / ".__app.lock"))
    with lock as shared:
        assert isinstance(shared, SharedState)
        generation = shared.load()[0]
        shared.saw_foreign(1000.0)
        assert shared.foreign_until == 1000.0 + 3600.0
        assert shared.load()[0] == generation + 1
        shared.saw_foreign(1001.0)
        assert shared.foreign_until == 1001.0 + 3600.0
        assert shared.load()[0] == generation + 1
    lock.close()


def _lines_of_every_file(directory: Path) -> list[str]:
    """The lines of every file of app.log (plain or compressed), in no special order."""
    return [
        line
        for name in os.listdir(directory)
        if name.startswith("app.log")
        for line in read_log(directory / name).decode().splitlines()
    ]


def test_a_record_written_into_a_file_that_concurrent_log_handler_gzipped_away_is_written_again(
    tmp_path: Path,
) -> None:
    """concurrent-log-handler appends behind mplog's back, then rotates and gzips, deleting
    the plain file mplog still holds: the next mplog record, which lands in that deleted
    file before mplog knows, is written again to the new file, and nothing is lost."""
    from concurrent_log_handler import ConcurrentRotatingFileHandler as ClhHandler

    path = str(tmp_path / "app.log")
    clh = ClhHandler(path, maxBytes=300, backupCount=50, use_gzip=True)
    ours = mplog.ConcurrentRotatingFileHandler(
        path, maxBytes=300, backupCount=50, compress="gzip", compress_delay=0
    )
    try:
        clh.emit(make_record("clh 0"))
        ours.emit(make_record("mplog 0"))
        for seq in range(1, 30):  # several rotations, each gzipping the file mplog holds
            clh.emit(make_record(f"clh {seq} " + "x" * 20))
        ours.emit(make_record("mplog 1"))  # into the deleted file, then again into the new one
        ours.emit(make_record("mplog 2"))
    finally:
        clh.close()
        ours.close()
    lines = _lines_of_every_file(tmp_path)
    assert_exactly_once(
        [line for line in lines if line.startswith("mplog")], ["mplog 0", "mplog 1", "mplog 2"]
    )
    assert_exactly_once(
        [line.split(" x")[0] for line in lines if line.startswith("clh")],
        [f"clh {seq}" for seq in range(30)],
    )


def test_a_file_concurrent_log_handler_rotated_in_is_noticed_when_mplog_first_checks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """concurrent-log-handler rotates and fills the new file while no mplog process
    writes; the next mplog check finds a file nobody announced that already holds
    records, and takes it as a sign of a foreign writer. So when concurrent-log-handler
    rotates that file away right after mplog's next record (gzip deletes it), mplog
    follows at once instead of writing into the deleted file until its next watch."""
    from concurrent_log_handler import ConcurrentRotatingFileHandler as ClhHandler

    clock = Clock(time.time())
    monkeypatch.setattr(time, "time", clock.time)
    path = str(tmp_path / "app.log")
    ours = mplog.ConcurrentRotatingFileHandler(
        path, maxBytes=100_000, backupCount=50, compress="gzip", compress_delay=3600
    )
    clh = ClhHandler(path, maxBytes=300, backupCount=50, use_gzip=True)
    sent = []

    def clh_record() -> None:
        sent.append(f"clh {len(sent)} " + "x" * 20)
        clh.emit(make_record(sent[-1]))

    def clh_until_rotated() -> bool:
        """Log through concurrent-log-handler until it rotates; True if it did at once."""
        inode = os.stat(path).st_ino
        clh_record()
        at_once = os.stat(path).st_ino != inode
        while os.stat(path).st_ino == inode:
            clh_record()
        return at_once

    try:
        ours.emit(make_record("mplog 0"))
        clh_until_rotated()
        while os.path.getsize(path) < 265:  # nearly full: mplog's next record fills it
            clh_record()
        clock.now += 2  # mplog's watch is due: its next record checks the path
        ours.emit(make_record("mplog 1" + "y" * 30))
        assert clh_until_rotated(), "concurrent-log-handler appended before rotating"
        ours.emit(make_record("mplog 2"))  # the file mplog held is gone (gzipped)
        ours.emit(make_record("mplog 3"))
    finally:
        clh.close()
        ours.close()
    lines = _lines_of_every_file(tmp_path)
    assert_exactly_once(
        [line.rstrip("y") for line in lines if line.startswith("mplog")],
        ["mplog 0", "mplog 1", "mplog 2", "mplog 3"],
    )
    assert_exactly_once([line for line in lines if line.startswith("clh")], sent)
