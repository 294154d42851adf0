"""Processes converge on one lock file and one header whatever happens to it: a log
directory removed and made again while they log into it (a deploy script's ``rm -rf
logs && mkdir logs``, then a restart), or a lock file truncated under them.  What was
mended is reported once."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import fleet_workers  # noqa: E402 - after the sys.path entry
import mp_workers  # noqa: E402
import mplog  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")

_LOCK = ".__app.lock"


class _Noting(mplog.ConcurrentRotatingFileHandler):
    """Keeps what mplog reports through handleError instead of printing it."""

    reports: list[str]

    def handleError(self, record: logging.LogRecord) -> None:
        self.reports.append(str(sys.exc_info()[1]))


def _descriptors() -> dict[str, str]:
    """This process's descriptors and what they are open on (``/proc/self/fd``)."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = (
                f"{os.readlink(f'/proc/self/fd/{fd}')} {os.stat(f'/proc/self/fd/{fd}').st_ino}"
            )
        except OSError:  # the descriptor listdir itself used, closed since
            continue
    return found


def _lock_files_held(inherited: dict[str, str]) -> list[str]:
    """``<target> <inode>`` of each descriptor of this process on a lock file, but for
    the *inherited* ones (a forked child has its parent's, of other tests' logs)."""
    return [
        target
        for fd, target in _descriptors().items()
        if _LOCK in target and inherited.get(fd) != target
    ]


def _writer(
    path: str, locks: str | None, worker: int, count: int, stops: list[int], pause: Any, out: str
) -> None:
    """Log *count* framed records (lock files in *locks*, or next to the log), checking
    the path before each (watch_interval=0); at each seq in *stops*, wait twice at
    *pause* (the test acts in between).  Then write what was reported and which lock
    files this process holds into *out*."""
    inherited = _descriptors()
    handler = _Noting(path, watch_interval=0, lock_file_directory=locks)
    handler.reports = []
    handler.setFormatter(mp_workers.FramedFormatter())
    logger = logging.getLogger(f"replaced.{worker}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for seq in range(count):
        if seq in stops:
            pause.wait(60)
            pause.wait(60)
        mp_workers.emit(logger, worker, seq, "small")
    held = _lock_files_held(inherited)
    handler.close()
    with open(out, "w") as file:
        json.dump({"reports": handler.reports, "held": held}, file)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("first", ["new", "old"], ids=["new-start-first", "old-log-first"])
@pytest.mark.parametrize("apart", [False, True], ids=["lock-in-logs", "lock-elsewhere"])
def test_writers_converge_after_the_log_directory_is_made_again(
    tmp_path: Path, first: str, apart: bool
) -> None:
    """Three processes log into ``logs/``; it is removed and made again; two new processes
    start, either before the old ones log again or after.  Every process ends on the
    one lock file (the one now in ``logs/``, or the one in ``lock_file_directory``),
    no lock file is reported damaged (the old and new processes once took each other's
    claims for damage, hundreds of times a second), each old process says once that
    its lock file was replaced if it was, and every record logged after the removal
    is there once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    path = str(logs / "app.log")
    locks = str(tmp_path / "locks") if apart else None
    lock_path = Path(locks or logs) / _LOCK
    count, half = 600, 300
    ctx = multiprocessing.get_context("fork")
    pause_old, pause_new = ctx.Barrier(4), ctx.Barrier(3)
    out = tmp_path / "out"
    out.mkdir()
    old_stops = [half, half + 10]  # before the removal, and once they logged after it
    new_stops = [10] if first == "new" else [0]
    old = [
        ctx.Process(
            target=_writer, args=(path, locks, w, count, old_stops, pause_old, f"{out}/{w}")
        )
        for w in range(3)
    ]
    new = [
        ctx.Process(
            target=_writer, args=(path, locks, w, count, new_stops, pause_new, f"{out}/{w}")
        )
        for w in (3, 4)
    ]
    try:
        for process in old:
            process.start()
        pause_old.wait(60)  # the old ones are half-way
        shutil.rmtree(logs)
        logs.mkdir()
        if first == "new":
            for process in new:
                process.start()
            pause_new.wait(60)  # the new ones logged 10 records
            pause_old.wait(60)
            pause_old.wait(60)  # then the old ones logged 10
            pause_new.wait(60)
        else:
            pause_old.wait(60)
            pause_old.wait(60)  # the old ones logged 10 records
            for process in new:
                process.start()
            pause_new.wait(60)  # then the new ones started
            pause_new.wait(60)
        pause_old.wait(60)  # from here on, old and new log side by side
    finally:
        fleet_workers.run_fleet(old + new, pause_old, pause_new)
    found = fleet_workers.read_fleet(logs)
    _assert_after_removal(found, dict.fromkeys(range(5), count), half)
    for worker in range(5):
        result = json.loads((out / str(worker)).read_text())
        assert result["held"] == [f"{lock_path} {lock_path.stat().st_ino}"], f"worker {worker}"
        moved = [r for r in result["reports"] if "deleted or replaced; moved" in r]
        others = [r for r in result["reports"] if r not in moved]
        assert others == [], f"worker {worker} reported {len(others)} times: {others[:2]}"
        assert len(moved) == (1 if worker < 3 and not apart else 0), f"worker {worker}: {moved}"


def _assert_after_removal(found: list[tuple[int, int]], counts: dict[int, int], half: int) -> None:
    """The old workers' (0-2) records from *half* on and the new ones' (3-4) are all
    there, each once."""
    seqs: dict[int, list[int]] = {w: [] for w in counts}
    for worker, seq in found:
        seqs[worker].append(seq)
    for worker, count in counts.items():
        first = half if worker < 3 else 0
        assert sorted(seqs[worker]) == list(range(first, count)), f"worker {worker}"


@pytest.mark.timeout(120)
def test_a_truncated_lock_file_is_repaired_once_and_reported_once(tmp_path: Path) -> None:
    """Four processes log, checking the path before each record; while they pause, the
    lock file is truncated.  One of them repairs it and says so; the others find it
    whole, and every process still holds the one lock file."""
    path = str(tmp_path / "app.log")
    count = 400
    ctx = multiprocessing.get_context("fork")
    pause = ctx.Barrier(5)
    out = tmp_path / "out"
    out.mkdir()
    processes = [
        ctx.Process(target=_writer, args=(path, None, w, count, [200], pause, f"{out}/{w}"))
        for w in range(4)
    ]
    try:
        for process in processes:
            process.start()
        pause.wait(60)
        os.truncate(tmp_path / _LOCK, 0)
        pause.wait(60)
    finally:
        fleet_workers.run_fleet(processes, pause)
    fleet_workers.assert_each_once(
        fleet_workers.read_fleet(tmp_path), dict.fromkeys(range(4), count)
    )
    reports, lock_path = [], tmp_path / _LOCK
    for worker in range(4):
        result = json.loads((out / str(worker)).read_text())
        reports += result["reports"]
        assert result["held"] == [f"{lock_path} {lock_path.stat().st_ino}"], f"worker {worker}"
    assert len(reports) == 1, reports
    assert "damaged (truncated or overwritten); repaired" in reports[0]
