"""mode="w" for a fleet: the log is truncated only by a process that finds no other
process with it open (mplog.presence), so a new run starts one new file, however many
workers open it with mode="w", and a restart beside processes still draining loses
none of their records."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import mp_workers  # noqa: E402
from helpers import BASE, all_records, assert_each_once_in_order, log_files, reap  # noqa: E402

COUNT = 200
OLD = 99  # the worker id of the previous run's records
W_MODE = {"mode": "w", "maxBytes": 8192, "backupCount": 100}


def _previous_run(path: str) -> None:
    logger = mp_workers.make_logger(path, {}, "previous")
    mp_workers.emit_many(logger, OLD, range(10), "small")
    mp_workers.close_logger(logger)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_pool_whose_tasks_open_the_log_with_mode_w_starts_one_new_file(
    tmp_path: Path, method: str
) -> None:
    """The parent opens the log with mode="w" (the previous run's records go), then six
    pool tasks open it with mode="w" too: none truncates it again, so every record of
    the parent and of every task is there once, in order."""
    path = str(tmp_path / BASE)
    _previous_run(path)
    parent = mp_workers.make_logger(path, W_MODE, "parent")
    try:
        mp_workers.emit_many(parent, 0, range(COUNT), "small")
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(3) as pool:
            pids = pool.starmap(
                mp_workers.log_with_mode_w, [(path, worker, COUNT) for worker in range(1, 7)]
            )
        mp_workers.emit_many(parent, 0, range(COUNT, 2 * COUNT), "small")
    finally:
        mp_workers.close_logger(parent)
    assert os.getpid() not in pids
    counts = {0: 2 * COUNT, **dict.fromkeys(range(1, 7), COUNT)}
    assert_each_once_in_order(all_records(log_files(tmp_path)), counts)


def _draining(path: str, started: object, stop: object) -> None:
    """An old process that keeps logging until told to stop (a restart drains it)."""
    logger = mp_workers.make_logger(path, {"maxBytes": 8192, "backupCount": 100}, "old")
    seq = 0
    while True:
        mp_workers.emit(logger, 1, seq, "small")
        seq += 1
        if seq == 50:
            started.set()  # type: ignore[attr-defined]
        if stop.is_set() and seq % 100 == 0:  # type: ignore[attr-defined]
            break
    mp_workers.close_logger(logger)
    with open(path + ".count", "w") as out:
        out.write(str(seq))


def test_a_restart_beside_a_process_still_draining_truncates_nothing(tmp_path: Path) -> None:
    """A new process opens the log with mode="w" while an old one is still writing: it
    appends, and every record of both is there once; only once every process has
    closed the log does the next mode="w" start a new file."""
    path = str(tmp_path / BASE)
    ctx = multiprocessing.get_context("fork")
    started, stop = ctx.Event(), ctx.Event()
    old = ctx.Process(target=_draining, args=(path, started, stop))
    try:
        old.start()
        assert started.wait(60)
        new = mp_workers.make_logger(path, W_MODE, "new")
        mp_workers.emit_many(new, 2, range(COUNT), "small")
        stop.set()
        old.join(60)
        assert old.exitcode == 0
        mp_workers.emit_many(new, 2, range(COUNT, 2 * COUNT), "small")
        mp_workers.close_logger(new)
    finally:
        reap([old])
    old_count = int(Path(path + ".count").read_text())
    os.remove(path + ".count")
    assert_each_once_in_order(all_records(log_files(tmp_path)), {1: old_count, 2: 2 * COUNT})

    alone = mp_workers.make_logger(path, W_MODE, "alone")  # nobody has it open now
    mp_workers.emit_many(alone, 3, range(10), "small")
    mp_workers.close_logger(alone)
    assert [(r.worker, r.seq) for r in all_records([log_files(tmp_path)[-1]])] == [
        (3, seq) for seq in range(10)
    ]
