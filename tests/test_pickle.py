"""A handler survives pickling: a spawn child or a process pool task that receives it
gets an equivalent handler on the same log, taking the same lock."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import pickle
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import mp_workers  # noqa: E402 - after the sys.path entry spawn children need
import mplog  # noqa: E402
from helpers import all_records, assert_each_once_in_order, log_files  # noqa: E402

COUNT = 300
# Small enough that the processes rotate many times while they share the log.
SETTINGS = {"maxBytes": 4096, "backupCount": 200}


def _handler(path: Path, **options: object) -> mplog.ConcurrentRotatingFileHandler:
    handler = mplog.ConcurrentRotatingFileHandler(str(path), **{**SETTINGS, **options})
    handler.setFormatter(mp_workers.FramedFormatter())
    handler.setLevel(logging.INFO)
    return handler


def test_a_handler_passed_to_spawn_children_writes_the_same_log(tmp_path: Path) -> None:
    """Two spawn children get the parent's handler as an argument; they and the parent
    log into one rotating log: every record once, untorn, in order, and each child's
    handler had the parent's level, formatter and rotation settings."""
    handler = _handler(tmp_path / "app.log")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(mp_workers.log_through_handler, (handler, worker, COUNT))
            for worker in (1, 2)
        ]
        mp_workers.log_through_handler(handler, 0, COUNT)
        seen = [result.get(timeout=120) for result in results]
    assert {s["pid"] for s in seen}.isdisjoint({os.getpid()})
    for child in seen:
        assert child["level"] == logging.INFO
        assert child["formatter"] == "FramedFormatter"
        assert (child["maxBytes"], child["backupCount"]) == (4096, 200)
    files = log_files(tmp_path)
    assert len(files) > 3, "the log never rotated"
    assert_each_once_in_order(all_records(files), {0: COUNT, 1: COUNT, 2: COUNT})


def test_a_handler_passed_to_a_process_pool_task_writes_the_same_log(tmp_path: Path) -> None:
    """A batched handler goes to ProcessPoolExecutor tasks (spawn): they log
    into the parent's log, and nothing is lost or doubled."""
    handler = _handler(tmp_path / "app.log", batched=True)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futures = [
            pool.submit(mp_workers.log_through_handler, handler, worker, COUNT)
            for worker in (1, 2, 3)
        ]
        seen = [future.result(timeout=120) for future in futures]
    handler.close()
    assert all(child["level"] == logging.INFO for child in seen)
    assert_each_once_in_order(all_records(log_files(tmp_path)), {1: COUNT, 2: COUNT, 3: COUNT})


def test_an_unpickled_handler_opens_lazily_and_never_truncates(tmp_path: Path) -> None:
    """mode="w" truncated the log once, in the process that made the handler; its copy
    opens the log only at its first record, and appends."""
    path = tmp_path / "app.log"
    path.write_text("before\n")
    handler = mplog.ConcurrentRotatingFileHandler(str(path), mode="w")
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.makeLogRecord({"msg": "first"}))
    copy = pickle.loads(pickle.dumps(handler))
    assert copy.stream is None, "the copy opened the log before its first record"
    copy.emit(logging.makeLogRecord({"msg": "second"}))
    copy.close()
    handler.close()
    assert path.read_text() == "first\nsecond\n"
