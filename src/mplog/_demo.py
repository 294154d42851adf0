"""``mplog demo``: several processes log into one rotating file, then every record is checked.

Each worker writes lines ``<worker> <seq> <crc32> <payload>``; the check
(:func:`mplog._readback.read_back`, with the demo's line rule) reads the active file
and every backup (decompressing them with ``--compress``) and counts lost,
duplicated, torn and reordered records and oversized backups.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from typing import Any, TextIO

from ._handler import ConcurrentRotatingFileHandler
from ._readback import Verification, read_back

__all__ = ["DemoConfig", "Report", "run_demo", "verify_log"]

LOG_NAME = "demo.log"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; every field has a CLI option."""

    processes: int = 4
    records: int = 2000
    start_method: str | None = None
    max_bytes: int = 64 * 1024
    backup_count: int = 10_000
    when: str | None = None
    directory: str | None = None
    payload: int = 80
    compress: str | None = None


@dataclass
class Report:
    """What the demo found: the check of every file, where they are, how long it took."""

    check: Verification
    directory: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.check.ok


def _line(worker: int, seq: int, payload: str) -> str:
    body = f"{worker} {seq} {payload}"
    return f"{worker} {seq} {zlib.crc32(body.encode()):08x} {payload}"


def _worker(
    config: DemoConfig, path: str, worker: int, progress: Any, start: Any
) -> None:  # pragma: no cover - runs in a child process
    handler = ConcurrentRotatingFileHandler(
        path,
        maxBytes=config.max_bytes,
        backupCount=config.backup_count,
        when=config.when,
        compress=config.compress,
        compress_delay=0,  # no shipper reads the demo's logs; it checks every archive
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"mplog._demo.{worker}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    payload = ("é" + "x" * config.payload)[: config.payload]
    start.wait()
    for seq in range(config.records):
        logger.info(_line(worker, seq, payload))
        if seq % 100 == 99:
            with progress.get_lock():
                progress.value += 100
    handler.close()


def _parse_line(line: bytes) -> tuple[int, int] | None:
    """The (worker, seq) of a demo line, None unless it is whole: its CRC matches."""
    parts = line.split(b" ", 3)
    if len(parts) != 4 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    worker, seq, crc, payload = int(parts[0]), int(parts[1]), parts[2], parts[3]
    if crc != b"%08x" % zlib.crc32(b"%d %d %s" % (worker, seq, payload)):
        return None
    return worker, seq


def verify_log(directory: str, processes: int, records: int, max_bytes: int = 0) -> Verification:
    """Read every file of the demo log back and count what is missing, doubled or damaged."""
    return read_back(directory, LOG_NAME, _parse_line, processes, records, max_bytes=max_bytes)


def run_demo(config: DemoConfig, out: TextIO | None = None) -> Report:
    """Run the workers, show progress on *out*, then verify and return the report."""
    directory = config.directory or tempfile.mkdtemp(prefix="mplog-demo-")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOG_NAME)
    ctx: Any = multiprocessing.get_context(config.start_method)
    progress = ctx.Value("l", 0)
    start = ctx.Event()
    workers = [
        ctx.Process(target=_worker, args=(config, path, w, progress, start))
        for w in range(config.processes)
    ]
    total = config.processes * config.records
    show = None if out is None else Progress(out, total)
    try:
        for proc in workers:
            proc.start()
        began = time.perf_counter()
        start.set()
        while any(proc.is_alive() for proc in workers):
            if show is not None:
                show(progress.value)
            time.sleep(0.1)
        elapsed = time.perf_counter() - began
    finally:
        for proc in workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if show is not None:
        show.done()
    failed = [proc.exitcode for proc in workers if proc.exitcode != 0]
    if failed:
        raise RuntimeError(f"demo workers exited with {failed}")
    check = verify_log(directory, config.processes, config.records, config.max_bytes)
    return Report(check, directory, elapsed)


class Progress:
    """The progress display: a bar redrawn in place (``\\r``) on a terminal; elsewhere
    (a CI log, a file) one line per quarter of the records, which reads well there."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total = out, total
        try:
            self.terminal = out.isatty()
        except (AttributeError, ValueError):  # no isatty, or closed
            self.terminal = False
        self.quarters = 0  # lines written, off a terminal

    def __call__(self, done: int) -> None:
        if self.terminal:
            width = 30
            filled = width * done // max(self.total, 1)
            self.out.write(
                f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{self.total:,} records"
            )
        else:
            quarters = 4 * done // max(self.total, 1)
            if quarters <= self.quarters:
                return
            self.quarters = quarters
            self.out.write(f"  {done:,}/{self.total:,} records\n")
        self.out.flush()

    def done(self) -> None:
        """All records are written: the full bar (and end its line), or the last line."""
        self(self.total)
        if self.terminal:
            self.out.write("\n")
            self.out.flush()


def format_report(config: DemoConfig, report: Report, logs: str | None = None) -> str:
    """The summary the CLI prints; *logs* says where the logs are (default: their directory)."""
    check = report.check
    rate = check.found / report.seconds if report.seconds else 0.0
    lines = [
        f"logs          : {report.directory if logs is None else logs}",
        f"processes     : {config.processes} x {config.records:,} records"
        f" ({config.start_method or multiprocessing.get_start_method()})",
        f"written       : {check.found:,} of {check.written:,}",
        f"files         : {len(check.files)} ({check.backups} rotations"
        + (f", {check.compressed} compressed)" if config.compress else ")"),
        f"lost          : {check.lost}",
        f"duplicated    : {check.duplicated}",
        f"torn          : {check.torn}",
        f"out of order  : {check.out_of_order}",
        f"oversized     : {len(check.oversized)} (backups larger than --max-bytes"
        f" {config.max_bytes:,})",
        f"throughput    : {rate:,.0f} records/s",
        "result        : " + ("OK, every record exactly once" if report.ok else "FAILED"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m mplog demo")
