"""What a rotation costs as backupCount grows, with gzip and max_total_size.

Retention lists a log's backups at every rotation, and the compressing thread
lists them at every pass and looks its backup up under the writers' lock.  That
work must follow the files on disk, not the number ``backupCount`` allows::

    python benchmarks/rotation_cost.py --counts 10,1000,100000 --repeat 3

For each backupCount and repetition, in a fresh temporary directory, ``--procs``
writer processes (fork by default) log ``--records`` records each, flat out,
into one ``mplog.ConcurrentRotatingFileHandler(maxBytes=--max-bytes,
backupCount=<count>, compress="gzip", max_total_size=--max-total-size)``.  The
defaults keep fewer than 10 backups on disk, so every count sees the same files
and only the setting differs; ``--max-total-size 400KB --counts 1000,100000``
keeps about 130, as in the report that prompted this benchmark.

Each writer times every ``logger.info`` call with ``time.perf_counter_ns`` into a
preallocated array, and each rotation (``Rollover.rotate``: shift, prune, wake
the compressor, all under the writers' lock), each backup listing
(``Backups.files``) and each look-up by inode (``Backups.locate``, the
compressor's commit) by wrapping those methods on their classes: two clock reads
per call, nothing per record.

Afterwards every file left is read back (``.gz`` decompressed): retention has
deleted the oldest records, so only what is left can be checked; the exit status
is 1 if a record is there twice, a line is torn, or a record went to
``handleError``.

The table shows medians over the repetitions; ``--json`` writes every run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, TextIO

from mplog._bench_contenders import FORMAT, LOG_NAME, parse_record, percentile, writer_logger
from mplog._bench_runner import fresh_runs, rotated, run_writers
from mplog._cli_args import positive
from mplog._cli_args import size as cli_size
from mplog._readback import Verification, read_back

MESSAGE = "GET /api/v1/orders/%d?expand=items 200 w=%d seq=%d user=%s took=%.2fms"
TRACED = ("rotate", "files", "locate")  # what each writer times, see trace()


@dataclass
class Settings:
    """What every run of one invocation shares."""

    procs: int
    records: int  # per writer
    max_bytes: int
    max_total_size: int
    start_method: str


@dataclass
class WriterReport:
    """What one writer measured; crosses the results queue pickled."""

    writer: int
    start: float  # perf_counter() before the first record (CLOCK_MONOTONIC: system-wide)
    end: float  # after the last record, before close()
    errors: int
    latencies: bytes  # array("q"): each logger.info call, in ns
    traced: dict[str, list[int]]  # durations in ns of each call of each TRACED method


def trace(durations: dict[str, list[int]]) -> None:
    """Time every call of the rotation, the listing and the look-up (backups).

    Wrapped on the classes, in the writer process; a version without one of the
    methods is simply not traced."""
    from mplog._backups import Backups
    from mplog._rollover import Rollover

    clock = time.perf_counter_ns
    targets: list[tuple[type, str, str]] = [  # (class, method, key)
        (Rollover, "rotate", "rotate"),
        (Backups, "files", "files"),
        (Backups, "locate", "locate"),
    ]
    for owner, name, key in targets:
        method = getattr(owner, name, None)
        if method is None:
            continue
        spent = durations.setdefault(key, [])

        def timed(*args: Any, _method: Any = method, _spent: list[int] = spent) -> Any:
            start = clock()
            try:
                return _method(*args)
            finally:
                _spent.append(clock() - start)

        setattr(owner, name, timed)


def writer_main(
    path: str, writer: int, count: int, s: Settings, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """Child entry point: log the records flat out, then report."""
    from mplog import ConcurrentRotatingFileHandler

    traced: dict[str, list[int]] = {}
    trace(traced)
    handler = ConcurrentRotatingFileHandler(
        path,
        maxBytes=s.max_bytes,
        backupCount=count,
        compress="gzip",
        compress_delay=0,  # the cost measured includes compressing during the run
        max_total_size=s.max_total_size,
    )
    logger, errors = writer_logger(f"shop.api.worker{writer}", handler, FORMAT)
    info, clock = logger.info, time.perf_counter_ns
    latencies = array("q", [0]) * s.records  # preallocated: nothing allocated per record

    barrier.wait(timeout=120)
    start = time.perf_counter()
    for seq in range(s.records):
        before = clock()
        info(MESSAGE, seq % 9973, writer, seq, "alice@example.com", 3.25)
        latencies[seq] = clock() - before
    end = time.perf_counter()
    handler.close()
    results.put(WriterReport(writer, start, end, errors.count, latencies.tobytes(), traced))


# -- runs and summaries ----------------------------------------------------------------------------


@dataclass
class Run:
    """One backupCount, one repetition; durations in ns."""

    count: int
    repetition: int
    elapsed: float  # seconds, first writer's start to last writer's end (close excluded)
    rate: float  # records/s over elapsed, every writer together
    errors: int
    p50: int  # of a logger.info call, every writer's merged
    p99: int
    p999: int
    max: int
    rotations: int  # every writer's together
    rotation_p50: int
    rotation_p99: int
    listings: int  # Backups.files calls: retention and the compressor's passes
    listing_p50: int
    locates: int  # Backups.locate calls: the compressor's commits
    locate_p50: int
    check: Verification  # retention deleted the oldest records: only what is left counts


def measure(count: int, repetition: int, directory: str, s: Settings) -> Run:
    """Run the writers with backupCount *count* in *directory*, then read the files back."""
    ctx: Any = multiprocessing.get_context(s.start_method)
    barrier, results = ctx.Barrier(s.procs), ctx.Queue()
    path = os.path.join(directory, LOG_NAME)
    writers = [
        ctx.Process(target=writer_main, args=(path, w, count, s, barrier, results))
        for w in range(s.procs)
    ]
    reports: list[WriterReport] = run_writers(writers, results, f"backupCount={count}")
    calls = [v for r in reports for v in array("q", r.latencies)]
    traced = {name: [d for r in reports for d in r.traced.get(name, [])] for name in TRACED}
    elapsed = max(r.end for r in reports) - min(r.start for r in reports)
    return Run(
        count=count,
        repetition=repetition,
        elapsed=elapsed,
        rate=s.procs * s.records / elapsed,
        errors=sum(r.errors for r in reports),
        p50=percentile(calls, 0.5),
        p99=percentile(calls, 0.99),
        p999=percentile(calls, 0.999),
        max=max(calls),
        rotations=len(traced["rotate"]),
        rotation_p50=percentile(traced["rotate"], 0.5),
        rotation_p99=percentile(traced["rotate"], 0.99),
        listings=len(traced["files"]),
        listing_p50=percentile(traced["files"], 0.5),
        locates=len(traced["locate"]),
        locate_p50=percentile(traced["locate"], 0.5),
        check=read_back(directory, LOG_NAME, parse_record, s.procs, s.records),
    )


_MEDIANS = (
    "elapsed", "rate", "p50", "p99", "p999", "max", "rotations", "rotation_p50",
    "rotation_p99", "listings", "listing_p50", "locates", "locate_p50",
)  # fmt: skip


def summarize(runs: Sequence[Run], counts: Sequence[int]) -> list[dict[str, Any]]:
    """One row per count: the median of each figure over the repetitions, the worst check."""
    rows = []
    for count in counts:
        group = [r for r in runs if r.count == count]
        row: dict[str, Any] = {"count": count, "runs": len(group)}
        row.update({key: statistics.median(getattr(r, key) for r in group) for key in _MEDIANS})
        row["backups"] = statistics.median(r.check.backups for r in group)
        row["found"] = statistics.median(r.check.found for r in group)
        for key in ("duplicated", "torn"):
            row[key] = max(getattr(r.check, key) for r in group)
        row["errors"] = max(r.errors for r in group)
        rows.append(row)
    return rows


def _duration(ns: float) -> str:
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} us"
    return f"{ns / 1e6:.1f} ms" if ns < 1e9 else f"{ns / 1e9:.2f} s"


_HEADER = (
    f"{'backupCount':>11} {'seconds':>8} {'records/s':>9} {'rotations':>9} {'rotate p50':>10} "
    f"{'p99':>8} {'listing':>8} {'locate':>7} {'call p99':>8} {'p99.9':>8} {'max':>8} "
    f"{'backups':>7} {'bad':>4}"
)


def format_table(rows: Sequence[dict[str, Any]], s: Settings, repeat: int) -> str:
    lines = [
        f"{s.procs} writers x {s.records:,} records, maxBytes {s.max_bytes:,}, gzip, "
        f"max_total_size {s.max_total_size:,}; medians of {repeat} runs",
        "",
        _HEADER,
        "-" * len(_HEADER),
    ]
    for r in rows:
        bad = r["duplicated"] + r["torn"] + r["errors"]
        lines.append(
            f"{r['count']:>11,} {r['elapsed']:>8.2f} {r['rate']:>9,.0f} {r['rotations']:>9,.0f} "
            f"{_duration(r['rotation_p50']):>10} {_duration(r['rotation_p99']):>8} "
            f"{_duration(r['listing_p50']):>8} {_duration(r['locate_p50']):>7} "
            f"{_duration(r['p99']):>8} {_duration(r['p999']):>8} {_duration(r['max']):>8} "
            f"{r['backups']:>7.0f} {bad:>4}"
        )
    lines += [
        "",
        "rotate: one rotation under the writers' lock (shift, retention, waking the compressor);",
        "listing: one listing of the backups (retention, each compressor pass); locate: the",
        "compressor's look-up by inode under the lock; call: one logger.info, every writer's",
        "merged; backups: left on disk at the end; bad: records duplicated or torn among those",
        "left, or handleError calls (worst run).",
    ]
    return "\n".join(lines)


# -- driving it ----------------------------------------------------------------------------------


def run_all(
    counts: Sequence[int], repeat: int, s: Settings, root: str | None, progress: TextIO | None
) -> list[Run]:
    """Every count *repeat* times, in a rotated order each repetition."""
    runs: list[Run] = []
    order = partial(rotated, counts)
    for rep, count, directory in fresh_runs(repeat, order, "mplog-rotation-cost-", root):
        run = measure(count, rep, directory, s)
        runs.append(run)
        if progress is not None:
            progress.write(
                f"  rep {rep + 1} backupCount={count:<7} {run.elapsed:6.2f} s, "
                f"{run.rotations} rotations, rotate p50 {_duration(run.rotation_p50)}, "
                f"call p99.9 {_duration(run.p999)}, {run.check.backups} backups\n"
            )
            progress.flush()
    return runs


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected counts such as 10,1000") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every count must be at least 1")
    return list(dict.fromkeys(counts))


def _size(text: str) -> int:
    value = cli_size(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than zero")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts", type=_counts, default=[10, 1000, 100_000], help="backupCounts (10,1000,100000)"
    )
    parser.add_argument("--procs", type=positive, default=2, help="writer processes (2)")
    parser.add_argument("--records", type=positive, default=10_000, help="per writer (10000)")
    parser.add_argument("--max-bytes", type=_size, default="8KB", help="maxBytes (8KB)")
    parser.add_argument(
        "--max-total-size", type=_size, default="32KB", help="max_total_size (32KB)"
    )
    parser.add_argument("--repeat", type=positive, default=3, help="runs of each count (3)")
    parser.add_argument("--start-method", default="fork", choices=("fork", "spawn", "forkserver"))
    parser.add_argument("--dir", help="where the temporary log directory goes")
    parser.add_argument("--json", help="write every run and the summaries to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    s = Settings(args.procs, args.records, args.max_bytes, args.max_total_size, args.start_method)
    runs = run_all(args.counts, args.repeat, s, args.dir, None if args.quiet else sys.stderr)
    rows = summarize(runs, args.counts)
    print(format_table(rows, s, args.repeat))
    if args.json:
        environment = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "counts": args.counts,
            **asdict(s),
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"environment": environment, "rows": rows, "runs": [asdict(r) for r in runs]},
                f,
                indent=2,
            )
            f.write("\n")
    bad = [r["count"] for r in rows if r["duplicated"] or r["torn"] or r["errors"]]
    for count in bad:
        print(f"error: backupCount={count}: records duplicated, torn or failed", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
