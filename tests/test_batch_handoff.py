"""Batched mode's hand-off: producers append without a lock while the writer works, the
writer is woken per batch, not per record, and a record never waits for ever."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mplog
from helpers import RecordingHandler, make_record
from mplog._lock import InterProcessLock


class CountingCondition:
    """A stand-in for the queue's condition that counts the threads entering it."""

    def __init__(self, cond: threading.Condition) -> None:
        self.cond = cond
        self.entered: list[str] = []

    def __enter__(self) -> bool:
        self.entered.append(threading.current_thread().name)
        return self.cond.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.cond.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cond, name)


@pytest.mark.timeout(30)
def test_producers_take_no_lock_while_the_writer_works(tmp_path: Path) -> None:
    """While the writer is busy with a batch (here: waiting for the inter-process lock),
    queueing a record takes no lock at all: producers do not contend with the writer or
    with each other for the queue's condition, and every record is written in order."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True)
    batch = handler._batch
    assert batch is not None
    holder = InterProcessLock(str(tmp_path / ".__app.lock"))
    holder.acquire()
    try:
        handler.emit(make_record("r0"))
        deadline = time.monotonic() + 10
        while batch._pending and time.monotonic() < deadline:  # the writer takes r0, then waits
            time.sleep(0.001)
        assert not batch._pending
        counting = CountingCondition(batch._cond)
        batch._cond = counting  # type: ignore[assignment]
        for i in range(1, 200):
            handler.emit(make_record(f"r{i}"))
        batch._cond = counting.cond
    finally:
        holder.release()
        holder.close()
    assert counting.entered == []
    handler.flush()
    handler.close()
    assert path.read_text().splitlines() == [f"r{i}" for i in range(200)]
    assert handler.errors_seen == []


@pytest.mark.timeout(30)
def test_records_are_written_without_a_flush(tmp_path: Path) -> None:
    """A short burst, then nothing: the writer does not wait for more records for ever
    (it lingers at most batch.LINGER seconds after a batch)."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    try:
        for burst in range(3):
            expected = [f"b{burst}-{i}" for i in range(5 * burst + 1)]
            for line in expected:
                handler.emit(make_record(line))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if path.read_text().splitlines()[-len(expected) :] == expected:
                    break
                time.sleep(0.005)
            assert path.read_text().splitlines()[-len(expected) :] == expected
    finally:
        handler.close()


@pytest.mark.timeout(30)
def test_a_record_queued_as_the_writer_stops_is_written_by_its_caller(tmp_path: Path) -> None:
    """The writer stops (a close() by another thread) between a producer's test that it
    runs and its append: the producer takes its record back and writes it itself, before
    its logging call returns, after everything queued before; no writer thread restarts."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True)
    batch = handler._batch
    assert batch is not None

    class ClosesBeforeAppend(list):  # type: ignore[type-arg]
        armed = True

        def append(self, item: Any) -> None:
            if ClosesBeforeAppend.armed:
                ClosesBeforeAppend.armed = False
                closer = threading.Thread(target=batch.close)
                closer.start()
                closer.join()
            super().append(item)

    try:
        for i in range(5):
            handler.emit(make_record(f"r{i}"))
        with batch._cond:
            batch._pending = ClosesBeforeAppend(batch._pending)
        handler.emit(make_record("raced"))
        assert path.read_text().splitlines() == [*(f"r{i}" for i in range(5)), "raced"]
        assert batch.stopped
        assert batch._thread is None
        assert list(batch._pending) == []
        handler.emit(make_record("after"))  # synchronous from now on
        assert path.read_text().splitlines()[-1] == "after"
    finally:
        handler.close()
    assert handler.errors_seen == []
