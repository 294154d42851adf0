"""``mplog demo``: several processes log into one rotating file, then every record is checked.

Each worker writes lines ``<worker> <seq> <crc32> <payload>``; the checker reads
the active file and every backup (decompressing them with ``--compress``) and
counts lost, duplicated and torn records.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, TextIO

from .compression import BUILTIN_SUFFIXES, reader_for
from .handler import ConcurrentRotatingFileHandler

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
    """What the checker found in the files."""

    expected: int = 0
    found: int = 0
    lost: int = 0
    duplicated: int = 0
    torn: int = 0
    out_of_order: int = 0
    files: list[str] = field(default_factory=list)
    oversized: list[str] = field(default_factory=list)
    compressed: int = 0  # backups found compressed
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.duplicated or self.torn or self.out_of_order or self.oversized
        )


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
    logger = logging.getLogger(f"mplog.demo.{worker}")
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


def _ordered_files(directory: str) -> list[str]:
    """Backups oldest first (highest number first), then the active file."""
    names = [n for n in os.listdir(directory) if n.startswith(LOG_NAME)]

    def key(name: str) -> tuple[int, str, int]:
        if name == LOG_NAME:
            return (2, "", 0)
        suffix = _strip_compression(name)[len(LOG_NAME) + 1 :]
        if suffix.isdigit():  # size-only backups: .1 is the newest
            return (0, "", -int(suffix))
        # time-named: <period> then <period>.1, <period>.2 ... in rotation order
        period, _, counter = suffix.partition(".")
        return (1, period, int(counter or 0))

    return [os.path.join(directory, n) for n in sorted(names, key=key)]


def _strip_compression(name: str) -> str:
    for suffix in BUILTIN_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read(path: str) -> bytes:
    """The content of a log file, decompressed if it was compressed."""
    with open(path, "rb") as raw:
        reader = reader_for(path, raw)
        if reader is None:
            return raw.read()
        try:
            return reader.read()
        finally:
            reader.close()


def verify_log(directory: str, processes: int, records: int, max_bytes: int = 0) -> Report:
    """Read every file of the demo log and count what is missing, doubled or damaged."""
    report = Report(expected=processes * records)
    seen: set[tuple[int, int]] = set()
    last = [-1] * processes
    for path in _ordered_files(directory):
        report.files.append(path)
        is_backup = os.path.basename(path) != LOG_NAME
        data = _read(path)
        if _strip_compression(path) != path:
            report.compressed += 1
        if max_bytes and is_backup and len(data) > max_bytes:
            report.oversized.append(path)
        with io.StringIO(data.decode("utf-8", errors="replace"), newline="\n") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 3)
                try:
                    worker, seq, crc, payload = int(parts[0]), int(parts[1]), parts[2], parts[3]
                except (IndexError, ValueError):
                    report.torn += 1
                    continue
                if _line(worker, seq, payload).split(" ", 3)[2] != crc or not (
                    0 <= worker < processes
                ):
                    report.torn += 1
                    continue
                if (worker, seq) in seen:
                    report.duplicated += 1
                    continue
                seen.add((worker, seq))
                report.found += 1
                if seq < last[worker]:
                    report.out_of_order += 1
                last[worker] = seq
    report.lost = report.expected - report.found
    return report


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
    try:
        for proc in workers:
            proc.start()
        began = time.perf_counter()
        start.set()
        while any(proc.is_alive() for proc in workers):
            if out is not None:
                _show_progress(out, progress.value, total)
            time.sleep(0.1)
        elapsed = time.perf_counter() - began
    finally:
        for proc in workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if out is not None:
        _show_progress(out, total, total)
        out.write("\n")
    failed = [proc.exitcode for proc in workers if proc.exitcode != 0]
    if failed:
        raise RuntimeError(f"demo workers exited with {failed}")
    report = verify_log(directory, config.processes, config.records, config.max_bytes)
    report.seconds = elapsed
    return report


def _show_progress(out: TextIO, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    out.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{total:,} records")
    out.flush()


def format_report(config: DemoConfig, report: Report, logs: str | None = None) -> str:
    """The summary the CLI prints; *logs* says where the logs are (default: their directory)."""
    rate = report.found / report.seconds if report.seconds else 0.0
    rotated = len(report.files) - 1
    if logs is None:
        logs = os.path.dirname(report.files[0]) if report.files else "-"
    lines = [
        f"logs          : {logs}",
        f"processes     : {config.processes} x {config.records:,} records"
        f" ({config.start_method or multiprocessing.get_start_method()})",
        f"written       : {report.found:,} of {report.expected:,}",
        f"files         : {len(report.files)} ({rotated} rotations"
        + (f", {report.compressed} compressed)" if config.compress else ")"),
        f"lost          : {report.lost}",
        f"duplicated    : {report.duplicated}",
        f"torn          : {report.torn}",
        f"out of order  : {report.out_of_order}",
        f"oversized     : {len(report.oversized)} (backups larger than --max-bytes"
        f" {config.max_bytes:,})",
        f"throughput    : {rate:,.0f} records/s",
        "result        : " + ("OK, every record exactly once" if report.ok else "FAILED"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m mplog demo")
