"""Batched mode: a background writer, many records per lock acquisition."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mplog
from helpers import RecordingHandler, make_record
from mplog._lock import InterProcessLock


def test_flush_returns_once_everything_is_in_the_file(tmp_path: Path) -> None:
    """After flush() every record emitted before it is in the file, in order."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    try:
        for i in range(1000):
            handler.emit(make_record(f"r{i}"))
        handler.flush()
        assert path.read_text().splitlines() == [f"r{i}" for i in range(1000)]
    finally:
        handler.close()


def test_batches_split_exactly_at_size_boundaries(tmp_path: Path) -> None:
    """Size rotation stays exact in batched mode: backups hold whole records up to maxBytes."""
    path = tmp_path / "app.log"
    record_size = len("r0000\n")
    handler = mplog.ConcurrentRotatingFileHandler(
        path, maxBytes=100, backupCount=1000, batched=True
    )
    try:
        for i in range(2000):
            handler.emit(make_record(f"r{i:04d}"))
    finally:
        handler.close()
    backups = sorted(tmp_path.glob("app.log.*"), key=lambda p: -int(p.suffix[1:]))
    assert backups, "rotation happened"
    for backup in backups:
        assert backup.stat().st_size == (100 // record_size) * record_size
    lines = [line for f in [*backups, path] for line in f.read_text().splitlines()]
    assert lines == [f"r{i:04d}" for i in range(2000)]


@pytest.mark.parametrize("start", [0, 30], ids=["empty-file", "records-there"])
def test_a_batch_is_one_write_between_rotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    """A batch is written with one write where no rotation falls inside it, and split at
    each size boundary where one does (as the writer thread hands batches over)."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, maxBytes=100, backupCount=10)
    writes: list[bytes] = []
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if fd == handler._fd:
            writes.append(bytes(data))
        return real_write(fd, data)

    records = [b"r%04d\n" % n for n in range(20)]  # 6 bytes: 16 fit in 100
    try:
        if start:
            handler._write_batch([b"x" * (start - 1) + b"\n"])
        monkeypatch.setattr(os, "write", write)
        handler._write_batch(records[:5])
        handler._write_batch(records[5:])
    finally:
        monkeypatch.undo()
        handler.close()
    fits = (100 - start) // 6  # records that fit behind what is there
    # the first batch; the second up to the limit; after the rotation, the rest
    expected = [records[:5], records[5:fits], records[fits:]]
    assert writes == [b"".join(part) for part in expected]
    assert (tmp_path / "app.log.1").read_bytes().endswith(b"".join(records[:fits]))
    assert path.read_bytes() == b"".join(records[fits:])


def test_close_writes_out_the_queue_and_emit_after_close_still_works(tmp_path: Path) -> None:
    """close() flushes; a record emitted after close is still written, like the stdlib."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    for i in range(500):
        handler.emit(make_record(f"r{i}"))
    handler.close()
    assert len(path.read_text().splitlines()) == 500
    handler.emit(make_record("late"))
    handler.close()
    assert path.read_text().splitlines()[-1] == "late"


def test_interpreter_exit_flushes(tmp_path: Path) -> None:
    """A process that exits without closing its handler still writes its queue."""
    path = tmp_path / "app.log"
    code = (
        "import logging, mplog\n"
        f"mplog.setup_logging({str(path)!r}, format='%(message)s', batched=True)\n"
        "for i in range(5000): logging.getLogger('x').info('r%d', i)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert path.read_text().splitlines() == [f"r{i}" for i in range(5000)]


@pytest.mark.timeout(30)
def test_full_queue_blocks_the_caller_by_default(tmp_path: Path) -> None:
    """With overflow='block' nothing is dropped: the caller waits for room in the queue."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True, queue_size=10)
    holder = InterProcessLock(str(tmp_path / ".__app.lock"))
    holder.acquire()  # another process holds the log: the writer cannot write
    done = threading.Event()

    def produce() -> None:
        for i in range(50):
            handler.emit(make_record(f"r{i}"))
        done.set()

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        assert not done.wait(0.5), "the producer should be blocked on the full queue"
    finally:
        holder.release()
        holder.close()
        producer.join()
    handler.close()
    assert handler.dropped == 0
    assert path.read_text().splitlines() == [f"r{i}" for i in range(50)]


def test_drop_mode_counts_and_reports_once_per_episode(tmp_path: Path) -> None:
    """overflow='drop' drops when full, counts the drops and reports each episode once."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True, queue_size=10, overflow="drop")
    holder = InterProcessLock(str(tmp_path / ".__app.lock"))
    holder.acquire()
    try:
        handler.emit(make_record("r0"))
        batch = handler._batch
        assert batch is not None
        deadline = time.monotonic() + 10
        while batch._pending and time.monotonic() < deadline:  # the writer takes r0, then stalls
            time.sleep(0.001)
        for i in range(1, 100):
            handler.emit(make_record(f"r{i}"))
    finally:
        holder.release()
        holder.close()
    handler.flush()
    written = path.read_text().splitlines()
    assert written == [f"r{i}" for i in range(11)]  # r0, then the 10 the queue holds
    assert handler.dropped == 89
    assert [type(e) for e in handler.errors_seen] == [mplog.QueueFull]
    assert "queue_size=10" in str(handler.errors_seen[0])
    handler.emit(make_record("after"))  # the episode ended: logging goes on
    handler.close()
    assert path.read_text().splitlines()[-1] == "after"


def test_write_failures_are_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed batches go to handleError from the writer thread, once per episode."""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True)

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    handler.emit(make_record("lost"))
    handler.flush()
    handler.emit(make_record("lost too"))  # a second failed batch: the same episode
    handler.flush()
    assert [type(e) for e in handler.errors_seen] == [OSError]
    monkeypatch.undo()
    handler.emit(make_record("after"))
    handler.close()
    assert [type(e) for e in handler.errors_seen] == [OSError, mplog.MplogError]
    assert "1 more records" in str(handler.errors_seen[1])
    assert path.read_text() == "after\n"


@pytest.mark.timeout(30)
def test_a_hook_raising_systemexit_in_the_writer_is_reported_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """A rotator that raises SystemExit (or any BaseException) in the writer thread:
    the batch goes to handleError and the writer writes the records after it.  (It
    ended the writer thread silently, as threading ignores SystemExit: flush() could
    then wait for ever, and later records were dropped without a report.)"""
    path = tmp_path / "app.log"
    handler = RecordingHandler(path, batched=True, maxBytes=200, backupCount=3)
    calls: list[str] = []

    def rotator(source: str, dest: str) -> None:
        calls.append(dest)
        if len(calls) == 1:
            raise SystemExit(3)
        os.rename(source, dest)

    handler.rotator = rotator
    handler.emit(make_record("x" * 150))
    handler.flush()
    handler.emit(make_record("y" * 150))  # rotates: the first rotation raises
    handler.flush()
    assert [type(e) for e in handler.errors_seen] == [SystemExit]
    for i in range(5):
        handler.emit(make_record(f"after {i}"))
    handler.close()
    text = "".join(p.read_text() for p in tmp_path.glob("app.log*"))
    assert [f"after {i}" for i in range(5)] == [
        line for line in text.splitlines() if line.startswith("after")
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_flushes_first_and_the_child_starts_empty(tmp_path: Path) -> None:
    """Records queued before os.fork() are written once, by the parent, never by the child."""
    path = tmp_path / "app.log"
    handler = mplog.ConcurrentRotatingFileHandler(path, batched=True)
    for i in range(2000):
        handler.emit(make_record(f"parent {i}"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        handler.emit(make_record("child"))
        handler.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    handler.close()
    assert os.waitstatus_to_exitcode(status) == 0
    lines = path.read_text().splitlines()
    assert sorted(lines) == sorted([f"parent {i}" for i in range(2000)] + ["child"])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"overflow": "spill"}, "overflow='spill'"), ({"queue_size": 0}, "queue_size=0")],
)
def test_bad_batched_options(tmp_path: Path, kwargs: dict[str, Any], fragment: str) -> None:
    """Bad batched-mode options fail at construction naming the value."""
    with pytest.raises(ValueError, match="expected") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", batched=True, **kwargs)
    assert fragment in str(info.value)
