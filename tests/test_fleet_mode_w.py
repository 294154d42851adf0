"""mode="w" for a fleet: the log is truncated only by a process that finds no other
process with it open (mplog._presence), so a new run starts one new file, however many
workers open it with mode="w", and a restart beside processes still draining loses
none of their records."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import mp_workers  # noqa: E402
from helpers import (  # noqa: E402
    BASE,
    EXAMPLES,
    all_records,
    assert_each_once_in_order,
    assert_exactly_once,
    example_env,
    free_port,
    log_files,
    log_lines,
    reap,
    running_server,
    wait_until,
)

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


_GUNICORN_W = """
import sys
sys.path.insert(0, {examples!r})
from gunicorn_conf import *  # noqa: F403 - the example
workers = 2
for handler in logconfig_dict["handlers"].values():  # noqa: F405
    handler["mode"] = "w"  # a new log each run
    handler["maxBytes"], handler["backupCount"] = 4000, 1000
"""


@pytest.mark.timeout(150)
def test_gunicorn_reloaded_with_mode_w_keeps_what_its_old_workers_wrote(tmp_path: Path) -> None:
    """gunicorn with mode="w" handlers: the master starts new logs (last run's lines go);
    on SIGHUP it applies the logging configuration again, with mode="w", while its old
    workers still have the logs open: nothing is truncated, and every request served
    before and after the reload is in the access log once."""
    log_dir = tmp_path / "example-logs"
    log_dir.mkdir()
    (log_dir / "gunicorn.access.log").write_text("a line of the previous run\n")
    config = tmp_path / "gunicorn_w.py"
    config.write_text(_GUNICORN_W.format(examples=str(EXAMPLES)))
    port = free_port()
    env = example_env(MPLOG_EXAMPLE_DIR=str(log_dir), XDG_RUNTIME_DIR=str(tmp_path))
    args = [sys.executable, "-m", "gunicorn", "-c", str(config), "--bind", f"127.0.0.1:{port}"]
    error_log = log_dir / "gunicorn.error.log"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    ids: list[str] = []

    def requests(count: int) -> None:
        for _ in range(count):
            rid = uuid.uuid4().hex
            with opener.open(f"http://127.0.0.1:{port}/?rid={rid}", timeout=15) as response:
                assert response.read() == b"ok\n"
            ids.append(rid)

    def booted() -> int:
        return "\n".join(log_lines(log_dir, "gunicorn.error.log")).count("Booting worker")

    ready = (error_log, "Booting worker with pid", 2)
    with running_server(args, tmp_path, ready, env=env) as server:
        requests(100)
        server.send_signal(signal.SIGHUP)  # reload: logging configured again, new workers
        wait_until(lambda: booted() >= 4, 60, "new workers after the reload")
        requests(100)
    access = "\n".join(log_lines(log_dir, "gunicorn.access.log"))
    assert "previous run" not in access
    assert_exactly_once(re.findall(r"rid=(\w+)", access), ids)
    assert "Handling signal: hup" in "\n".join(log_lines(log_dir, "gunicorn.error.log"))
