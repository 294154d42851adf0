"""Throughput of N processes x M records logged into ONE file, for several handlers.

Every worker process builds its own logger and handler, waits on a barrier so
that all start together, then calls ``logger.info`` M times with a ~100-byte
message through a realistic formatter.  Throughput is the total number of
records divided by (latest end - earliest start), both taken from the workers'
monotonic clocks (system-wide on Linux) and combined in the parent.  After each
measurement the parent reads back every file (the log and its backups) and
counts lost, duplicated and torn records: each message carries its worker id
and sequence number.

Contenders (all measured in the same run, interleaved across repetitions):

* ``mplog``: ``mplog.ConcurrentRotatingFileHandler`` rotating at *max_bytes*;
* ``filehandler``: stdlib ``logging.FileHandler``, never rotates (unsafe reference);
* ``clh``: ``concurrent_log_handler.ConcurrentRotatingFileHandler``, same rotation
  (skipped with a note if the package is not installed);
* ``rotating``: stdlib ``RotatingFileHandler``, same rotation (loses records with
  several processes);
* ``mplog-batched``: mplog with ``batched=True`` (skipped if this mplog has no
  batched mode).

Usage::

    python benchmarks/throughput.py --procs 1,4 --records 20000 --repeat 3 [--json out.json]

or, from Python, ``run(procs=(1, 4), records=20000)`` returns a :class:`BenchResult`.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import multiprocessing
import os
import queue
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
LOG_NAME = "bench.log"
REFERENCE = "filehandler"
CONTENDERS = ("mplog", "filehandler", "clh", "rotating", "mplog-batched")
_MESSAGE_SIZE = 100  # bytes of %(message)s; the whole line is ~150 bytes
_RECORD_RE = re.compile(rb" w=(\d+) seq=(\d+) ")


def contender_available(name: str) -> str | None:
    """Return None if *name* can run here, else the reason why not."""
    if name not in CONTENDERS:
        return f"unknown contender {name!r} (choose from {', '.join(CONTENDERS)})"
    if name == "clh":
        try:
            import concurrent_log_handler  # noqa: F401
        except ImportError:
            return "concurrent-log-handler is not installed (pip install 'mplog[bench]')"
    if name == "mplog-batched":
        import inspect

        import mplog

        if "batched" not in inspect.signature(mplog.ConcurrentRotatingFileHandler).parameters:
            return "this mplog has no batched mode"
    return None


def make_handler(name: str, path: str, max_bytes: int, backup_count: int) -> logging.Handler:
    """Build the handler of contender *name* writing to *path*."""
    if name in ("mplog", "mplog-batched"):
        import mplog

        options: dict[str, Any] = {"batched": True} if name == "mplog-batched" else {}
        return mplog.ConcurrentRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, **options
        )
    if name == "filehandler":
        return logging.FileHandler(path, encoding="utf-8")
    if name == "clh":
        import concurrent_log_handler

        return concurrent_log_handler.ConcurrentRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    if name == "rotating":
        return logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    raise ValueError(f"unknown contender {name!r}")


@dataclass
class WorkerReport:
    worker: int
    start: float
    end: float
    errors: int  # records that went to Handler.handleError


def _worker(
    contender: str,
    path: str,
    worker: int,
    records: int,
    max_bytes: int,
    backup_count: int,
    barrier: Any,
    results: Any,
) -> None:
    """Child entry point: log *records* records once every worker is ready."""
    handler = make_handler(contender, path, max_bytes, backup_count)
    handler.setFormatter(logging.Formatter(FORMAT))
    errors = 0

    def count_error(record: logging.LogRecord) -> None:
        nonlocal errors
        errors += 1

    handler.handleError = count_error  # type: ignore[method-assign]
    logger = logging.getLogger(f"bench.worker{worker}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    prefix_len = len(f"w={worker} seq={records} ")
    filler = "x" * max(1, _MESSAGE_SIZE - prefix_len)
    info = logger.info

    barrier.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC on Linux: comparable across processes
    for seq in range(records):
        info("w=%d seq=%d %s", worker, seq, filler)
    handler.flush()  # batched handlers: the records count once they are in the file
    end = time.perf_counter()
    handler.close()
    results.put(WorkerReport(worker, start, end, errors))


@dataclass
class Verification:
    lines: int = 0
    unique: int = 0
    lost: int = 0
    duplicated: int = 0
    torn: int = 0  # lines that do not carry a well-formed (worker, seq) pair
    files: int = 0


def verify(directory: str, procs: int, records: int) -> Verification:
    """Read back every log file in *directory* and count what arrived."""
    seen = [bytearray(records) for _ in range(procs)]
    result = Verification()
    matched = 0
    for name in os.listdir(directory):
        if not name.startswith(LOG_NAME):
            continue  # lock files
        result.files += 1
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        result.lines += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        for wid, seq in _RECORD_RE.findall(data):
            w, s = int(wid), int(seq)
            if w >= procs or s >= records:
                continue
            matched += 1
            if seen[w][s]:
                result.duplicated += 1
            else:
                seen[w][s] = 1
    result.unique = sum(flags.count(1) for flags in seen)
    result.lost = procs * records - result.unique
    result.torn = result.lines - matched
    return result


@dataclass
class Measurement:
    contender: str
    procs: int
    records: int  # per process
    repetition: int
    elapsed: float  # seconds, latest end - earliest start
    rate: float  # records per second
    errors: int
    check: Verification
    ratio: float | None = None  # rate / FileHandler's rate, same procs and repetition


def measure(
    contender: str,
    procs: int,
    records: int,
    directory: str,
    *,
    repetition: int = 0,
    start_method: str = "fork",
    max_bytes: int = 1_000_000,
    backup_count: int = 1000,
) -> Measurement:
    """Run *procs* workers of *contender* logging into ``directory/bench.log``."""
    ctx: Any = multiprocessing.get_context(start_method)
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    path = os.path.join(directory, LOG_NAME)
    workers = [
        ctx.Process(
            target=_worker,
            args=(contender, path, w, records, max_bytes, backup_count, barrier, results),
        )
        for w in range(procs)
    ]
    for p in workers:
        p.start()
    reports: list[WorkerReport] = []
    while len(reports) < procs:
        try:
            reports.append(results.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in workers if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{contender}: worker exited with code {dead[0]}") from None
    for p in workers:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"{contender}: worker exited with code {p.exitcode}")
    elapsed = max(r.end for r in reports) - min(r.start for r in reports)
    return Measurement(
        contender=contender,
        procs=procs,
        records=records,
        repetition=repetition,
        elapsed=elapsed,
        rate=procs * records / elapsed,
        errors=sum(r.errors for r in reports),
        check=verify(directory, procs, records),
    )


@dataclass
class Summary:
    """Medians over the repetitions of one (contender, procs) configuration."""

    contender: str
    procs: int
    records: int
    rate: float
    ratio: float | None
    spread: float  # (max - min) / median of the rates
    elapsed: float
    lost: int  # worst repetition
    duplicated: int
    torn: int
    errors: int
    files: int


@dataclass
class BenchResult:
    measurements: list[Measurement]
    summaries: list[Summary]
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)


def run(
    procs: Sequence[int] = (1, 4),
    records: int = 20000,
    repeat: int = 3,
    contenders: Sequence[str] = CONTENDERS,
    *,
    start_method: str = "fork",
    max_bytes: int = 1_000_000,
    backup_count: int = 1000,
    directory: str | None = None,
    progress: Callable[[Measurement], None] | None = None,
) -> BenchResult:
    """Measure every contender for every process count, *repeat* times, interleaved.

    Each repetition runs the contenders in a rotated order, so slow drifts of
    the machine spread over all of them.  Files go to a fresh temporary
    directory (under *directory* if given) that is removed afterwards.
    """
    notes = []
    active = []
    for name in contenders:
        reason = contender_available(name)
        if reason is None:
            active.append(name)
        else:
            notes.append(f"{name} skipped: {reason}")
    measurements: list[Measurement] = []
    root = tempfile.mkdtemp(prefix="mplog-bench-", dir=directory)
    try:
        for rep in range(repeat):
            order = active[rep % len(active) :] + active[: rep % len(active)] if active else []
            for n in procs:
                for name in order:
                    run_dir = os.path.join(root, f"{name}-{n}-{rep}")
                    os.mkdir(run_dir)
                    m = measure(
                        name,
                        n,
                        records,
                        run_dir,
                        repetition=rep,
                        start_method=start_method,
                        max_bytes=max_bytes,
                        backup_count=backup_count,
                    )
                    shutil.rmtree(run_dir)
                    measurements.append(m)
                    if progress is not None:
                        progress(m)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _fill_ratios(measurements)
    environment = {
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "cpus": os.cpu_count(),
        "start_method": start_method,
        "max_bytes": max_bytes,
        "backup_count": backup_count,
        "records_per_process": records,
        "repeat": repeat,
    }
    return BenchResult(measurements, _summarize(measurements, active, procs), notes, environment)


def _fill_ratios(measurements: list[Measurement]) -> None:
    reference = {(m.procs, m.repetition): m.rate for m in measurements if m.contender == REFERENCE}
    for m in measurements:
        ref = reference.get((m.procs, m.repetition))
        m.ratio = m.rate / ref if ref else None


def _summarize(
    measurements: list[Measurement], contenders: Sequence[str], procs: Sequence[int]
) -> list[Summary]:
    summaries = []
    for n in procs:
        for name in contenders:
            group = [m for m in measurements if m.contender == name and m.procs == n]
            if not group:
                continue
            rates = [m.rate for m in group]
            ratios = [m.ratio for m in group if m.ratio is not None]
            median_rate = statistics.median(rates)
            summaries.append(
                Summary(
                    contender=name,
                    procs=n,
                    records=group[0].records,
                    rate=median_rate,
                    ratio=statistics.median(ratios) if ratios else None,
                    spread=(max(rates) - min(rates)) / median_rate,
                    elapsed=statistics.median(m.elapsed for m in group),
                    lost=max(m.check.lost for m in group),
                    duplicated=max(m.check.duplicated for m in group),
                    torn=max(m.check.torn for m in group),
                    errors=max(m.errors for m in group),
                    files=max(m.check.files for m in group),
                )
            )
    return summaries


def format_table(result: BenchResult) -> str:
    """Render the medians as a plain-text table."""
    header = (
        f"{'procs':>5}  {'contender':<14} {'records/s':>10} {'vs FH':>6} {'spread':>7} "
        f"{'elapsed':>8} {'lost':>7} {'dup':>5} {'torn':>5} {'err':>4} {'files':>5}"
    )
    lines = [header, "-" * len(header)]
    for s in result.summaries:
        ratio = f"{s.ratio:.2f}" if s.ratio is not None else "-"
        lines.append(
            f"{s.procs:>5}  {s.contender:<14} {s.rate:>10,.0f} {ratio:>6} {s.spread:>6.0%} "
            f"{s.elapsed:>7.2f}s {s.lost:>7} {s.duplicated:>5} {s.torn:>5} {s.errors:>4} "
            f"{s.files:>5}"
        )
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers such as 1,4") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers >= 1")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=_int_list, default=[1, 4], help="e.g. 1,4 (default)")
    parser.add_argument("--records", type=int, default=20000, help="records per process")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"subset of {','.join(CONTENDERS)}"
    )
    parser.add_argument("--start-method", choices=("fork", "spawn", "forkserver"), default="fork")
    parser.add_argument("--max-bytes", type=int, default=1_000_000)
    parser.add_argument("--backup-count", type=int, default=1000)
    parser.add_argument("--dir", help="where to create the temporary log directory")
    parser.add_argument("--json", help="also write every measurement and the medians here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-measurement lines")
    args = parser.parse_args(argv)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]

    def progress(m: Measurement) -> None:
        if not args.quiet:
            print(
                f"  rep {m.repetition} procs {m.procs} {m.contender:<14} {m.rate:>10,.0f} rec/s "
                f"{m.elapsed:6.2f}s lost {m.check.lost}",
                file=sys.stderr,
                flush=True,
            )

    result = run(
        args.procs,
        args.records,
        args.repeat,
        contenders,
        start_method=args.start_method,
        max_bytes=args.max_bytes,
        backup_count=args.backup_count,
        directory=args.dir,
        progress=progress,
    )
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(asdict(result), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
