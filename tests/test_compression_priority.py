"""The compressing thread runs at the lowest CPU priority on Linux, and still finishes.

A gzip of a 10 MB backup takes a core for a fraction of a second; at nice 19 it takes
only what the writers leave (mplog._priority).  Nice 19, not SCHED_IDLE: a busy machine
slows the compression down, never stops it.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import BASE, ReportingHandler, gzip2, info_record, names_in
from mplog import _priority

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's"
)


def _nice(tid: int) -> int:
    """The nice value of thread *tid* of this process, as the kernel shows it."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19; fields 1-2 precede ")"


@linux_only
@pytest.mark.timeout(60)
def test_the_compressing_thread_runs_at_nice_19_and_only_it(tmp_path: Path) -> None:
    """While the background thread compresses, the kernel shows it at nice 19; the thread
    that logs keeps the process's own priority."""
    entered, release = threading.Event(), threading.Event()
    tids: list[int] = []

    def held(path: str) -> str:
        tids.append(threading.get_native_id())
        entered.set()
        assert release.wait(30), "the test never released the compressor"
        return gzip2(path)

    held.suffix = ".gz2"  # type: ignore[attr-defined]
    own = _nice(threading.get_native_id())
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=100, backupCount=3, compress=held, compress_delay=0
    )
    try:
        for n in range(3):
            handler.emit(info_record(f"record {n} " + "x" * 100))
        assert entered.wait(30), "the compressor never started"
        (tid,) = set(tids)
        assert tid != threading.get_native_id()  # the background thread, not this one
        assert _nice(tid) == _priority.LOWEST == 19
        assert os.getpriority(os.PRIO_PROCESS, tid) == 19
        assert _nice(threading.get_native_id()) == own
    finally:
        release.set()
        handler.close()
    assert handler.reports == []


_BUSY_WRITER = textwrap.dedent(
    """
    import logging, sys
    from mplog import ConcurrentRotatingFileHandler
    handler = ConcurrentRotatingFileHandler(sys.argv[1], maxBytes=1_000_000, backupCount=1)
    logger = logging.getLogger("busy")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    print("ready", flush=True)
    while True:
        logger.info("busy %s", "y" * 100)
    """
)


@pytest.fixture
def busy_machine(tmp_path: Path) -> Iterator[None]:
    """As many writer processes as cores, logging flat out (at the default priority) into
    another log until the test ends."""
    (tmp_path / "busy").mkdir()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _BUSY_WRITER, str(tmp_path / "busy" / "busy.log")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "ready\n"
        yield
    finally:
        for writer in writers:
            writer.kill()
        for writer in writers:
            writer.wait()
            if writer.stdout is not None:
                writer.stdout.close()


@linux_only
@pytest.mark.timeout(90)
def test_compression_at_nice_19_still_finishes_while_writers_keep_every_core_busy(
    tmp_path: Path, busy_machine: None
) -> None:
    """With a writer spinning on every core, the background thread (not close()) still
    compresses every backup: the lowest priority slows it down, it does not starve."""
    log = tmp_path / "app"
    log.mkdir()
    handler = ReportingHandler(
        log / BASE, maxBytes=300_000, backupCount=5, compress="gzip", compress_delay=0
    )
    line = "z" * 1000
    try:
        for n in range(1000):  # 3 rotations of ~300 KB
            handler.emit(info_record(f"record {n} {line}"))
        expected = [f"{BASE}.{n}.gz" for n in (1, 2, 3)]
        while sorted(name for name in os.listdir(log) if name.endswith(".gz")) != expected:
            time.sleep(0.05)  # until the background thread is done (the test's timeout)
        assert names_in(log) == [BASE, *expected]  # no temporary file left
    finally:
        handler.close()
    assert handler.reports == []
    records = b"".join(gzip.decompress((log / name).read_bytes()) for name in expected)
    assert records.count(b"\n") + (log / BASE).read_bytes().count(b"\n") == 1000


def test_lowering_does_nothing_outside_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    """Elsewhere setpriority would lower the whole process: it is not called."""

    def refuse(*args: object) -> None:
        raise AssertionError("setpriority called")

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(os, "setpriority", refuse, raising=False)
    _priority.lower_this_thread()


def test_a_refused_priority_change_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing setpriority (a seccomp filter, no permission) leaves compression at the
    process's priority, without an error."""
    calls: list[tuple[int, int, int]] = []

    def denied(which: int, who: int, value: int) -> None:
        calls.append((which, who, value))
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "setpriority", denied, raising=False)
    monkeypatch.setattr(os, "PRIO_PROCESS", 0, raising=False)
    _priority.lower_this_thread()
    assert calls == [(0, threading.get_native_id(), 19)]
