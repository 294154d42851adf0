"""Child-process entry points and a reader for the reliability tests: fleets of writers
(mplog and concurrent-log-handler side by side) while something happens to their files.

Records use mp_workers' framing (length and crc32 per record); :func:`read_fleet`
reads every file of the log (plain and gzip), checks that each record is whole and
returns the (worker, seq) pairs in file order.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import mp_workers


def mplog_writer(
    path: str,
    kwargs: dict[str, Any],
    worker: int,
    count: int,
    barrier: Any,
    pause: Any = None,
    before_close: Any = None,
) -> None:
    """Log *count* framed records through mplog; half-way, wait at *pause* (a Barrier
    the test waits at too) and then at it again; before closing, at *before_close*."""
    logger = mp_workers.make_logger(path, kwargs, f"fleet.{worker}")
    barrier.wait()
    for seq in range(count):
        if pause is not None and seq == count // 2:
            pause.wait(60)  # the test does something to the files...
            pause.wait(60)  # ...and lets us go on
        mp_workers.emit(logger, worker, seq, "small")
    if before_close is not None:
        before_close.wait(60)
    mp_workers.close_logger(logger)


def clh_writer(
    path: str,
    kwargs: dict[str, Any],
    worker: int,
    count: int,
    barrier: Any,
    pause: Any = None,
    after_close: Any = None,
) -> None:
    """The same, through concurrent-log-handler (a process not yet migrated); after
    closing, wait at *after_close*."""
    from concurrent_log_handler import ConcurrentRotatingFileHandler

    handler = ConcurrentRotatingFileHandler(path, **kwargs)
    handler.setFormatter(mp_workers.FramedFormatter())
    logger = logging.getLogger(f"fleet.clh.{worker}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    barrier.wait()
    for seq in range(count):
        if pause is not None and seq == count // 2:
            pause.wait(60)
            pause.wait(60)
        mp_workers.emit(logger, worker, seq, "small")
    handler.close()
    if after_close is not None:
        after_close.wait(60)


def run_fleet(processes: list[Any], *barriers: Any) -> None:
    """Start *processes*, wait for them, reap them on every path; all must exit 0."""
    try:
        for process in processes:
            if process.pid is None:
                process.start()
        for process in processes:
            process.join(120)
    finally:
        for barrier in barriers:
            barrier.abort()
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def read_fleet(directory: Path, base: str = "app.log") -> list[tuple[int, int]]:
    """Every record in *base* and its backups (``.N`` and ``.N.gz``), oldest file first."""

    def age(path: Path) -> int:
        number = path.name[len(base) :].split(".")[1:2]
        return -int(number[0]) if number and number[0].isdigit() else 0

    found = []
    paths = [p for p in directory.iterdir() if p.name == base or p.name.startswith(base + ".")]
    for path in sorted(paths, key=age):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        found += mp_workers.framed(data, path.name)
    return found


def assert_each_once(found: list[tuple[int, int]], counts: dict[int, int]) -> None:
    """Every worker's records 0..count-1 are there exactly once, nothing else is."""
    seqs: dict[int, list[int]] = defaultdict(list)
    for worker, seq in found:
        seqs[worker].append(seq)
    assert sorted(seqs) == sorted(counts), f"workers {sorted(seqs)}, expected {sorted(counts)}"
    for worker, count in counts.items():
        got = sorted(seqs[worker])
        lost = sorted(set(range(count)) - set(got))
        assert not lost, f"worker {worker}: {len(lost)} of {count} lost, e.g. {lost[:5]}"
        assert got == list(range(count)), f"worker {worker}: duplicated records"


def leftovers(directory: Path) -> list[str]:
    """Temporary files of compressions still there."""
    return sorted(name for name in os.listdir(directory) if ".mplog-" in name)
