"""``mplog bench``: throughput of N processes logging into ONE file, for several handlers.

Every worker process builds its own logger and handler, waits on a barrier so
that all start together, then calls ``logger.info`` M times with a ~100-byte
message through a realistic formatter, timing each call.  Throughput is the
total number of records divided by (latest end - earliest start), taken from
the processes' monotonic clocks (system-wide on Linux); a record counts once it
is in the file (batched handlers are flushed, the queue listener's last write
ends its run).  After each measurement every file (the log and its backups) is
read back (:func:`mplog._readback.read_back`) to count lost, duplicated and torn
records: each message carries its worker id and sequence number.  The
``format-only`` contender writes nothing: its checks are None (``-`` in the table).

The contenders (see :mod:`mplog._bench_contenders`) run in the same process
tree, interleaved: each repetition runs them in a rotated order, so slow drifts
of the machine spread over all of them, and each rate is also given as a ratio
to ``FileHandler``'s rate in the same repetition.

From Python, :func:`run` returns a :class:`BenchResult`; :func:`format_tables`,
:func:`write_json` and :func:`plot` present it.  The JSON file holds
``asdict(BenchResult)``: ``environment`` (python, platform, cpus, start_method,
max_bytes, backup_count, records_per_process, repeat, procs, contenders),
``notes`` (skipped contenders), ``summaries`` (one per contender and process
count; the keys of :class:`Summary`) and ``measurements`` (every run; the keys
of :class:`Measurement`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from ._bench_contenders import (
    CONTENDERS,
    DEFAULT_CONTENDERS,
    LISTENER,
    LOG_NAME,
    REFERENCE,
    ProcessReport,
    contender_available,
    listener_main,
    parse_record,
    worker_main,
)
from ._bench_plot import figure, plot, require_matplotlib
from ._bench_runner import fresh_runs, rotated, run_writers
from ._readback import Verification, read_back

__all__ = [
    "CONTENDERS",
    "DEFAULT_CONTENDERS",
    "BenchResult",
    "Measurement",
    "Summary",
    "Verification",
    "figure",
    "format_tables",
    "measure",
    "plot",
    "require_matplotlib",
    "run",
    "write_json",
]


@dataclass
class Measurement:
    """One run of one contender with *procs* processes."""

    contender: str
    procs: int
    records: int  # per process
    repetition: int
    elapsed: float  # seconds, latest end - earliest start
    rate: float  # records per second
    errors: int
    p99_emit_ns: int  # median over the workers of each worker's p99 logger.info duration
    p999_emit_ns: int  # the same for the p99.9
    peak_rss: int | None  # bytes: max over the processes of ru_maxrss
    check: Verification | None  # None: the contender writes nothing
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
    log_queue = stop = listener = None
    if CONTENDERS[contender].listener:
        log_queue, stop = ctx.Queue(), ctx.Event()
        listener = ctx.Process(target=listener_main, args=(log_queue, path, stop, results))
    options = (records, max_bytes, backup_count, log_queue, barrier, results)
    workers = [
        ctx.Process(target=worker_main, args=(contender, path, w, *options)) for w in range(procs)
    ]
    reports: list[ProcessReport] = run_writers(workers, results, contender, listener, stop)
    start = min(r.start for r in reports if r.worker != LISTENER)
    elapsed = max(r.end for r in reports) - start
    rss = [r.peak_rss for r in reports if r.peak_rss is not None]
    writers = [r for r in reports if r.worker != LISTENER]
    check = None
    if CONTENDERS[contender].writes:
        check = read_back(directory, LOG_NAME, parse_record, procs, records)
    return Measurement(
        contender=contender,
        procs=procs,
        records=records,
        repetition=repetition,
        elapsed=elapsed,
        rate=procs * records / elapsed,
        errors=sum(r.errors for r in reports),
        p99_emit_ns=round(statistics.median(r.p99_ns or 0 for r in writers)),
        p999_emit_ns=round(statistics.median(r.p999_ns or 0 for r in writers)),
        peak_rss=max(rss) if rss else None,
        check=check,
    )


@dataclass
class Summary:
    """Medians over the repetitions of one (contender, procs) configuration."""

    contender: str
    procs: int
    records: int
    rate: float  # median
    ratio: float | None  # median of the per-repetition ratios to FileHandler
    spread: float  # (max - min) / median of the rates
    elapsed: float  # median
    lost: int | None  # worst repetition; None: the contender writes nothing
    duplicated: int | None  # worst repetition
    torn: int | None  # worst repetition
    errors: int  # worst repetition
    files: int | None  # most files in one repetition
    p99_emit_ns: int  # median
    p999_emit_ns: int  # median
    peak_rss: int | None  # bytes, max


@dataclass
class BenchResult:
    """Every measurement, their summaries, what was skipped and where it ran."""

    measurements: list[Measurement]
    summaries: list[Summary]
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)


def run(
    procs: Sequence[int] = (1, 4),
    records: int = 20000,
    repeat: int = 3,
    contenders: Sequence[str] = DEFAULT_CONTENDERS,
    *,
    start_method: str = "fork",
    max_bytes: int = 1_000_000,
    backup_count: int = 1000,
    directory: str | None = None,
    out: TextIO | None = None,
) -> BenchResult:
    """Measure every contender for every process count, *repeat* times, interleaved.

    Files go to a fresh temporary directory (under *directory* if given) that
    is removed afterwards.  One line of progress per measurement goes to *out*.
    """
    notes, active = [], []
    for name in contenders:
        reason = contender_available(name)
        if reason is None:
            active.append(name)
        else:
            notes.append(f"{name} skipped: {reason}")
    measurements: list[Measurement] = []
    total = repeat * len(procs) * len(active)

    def order(rep: int) -> list[tuple[int, str]]:
        return [(n, name) for n in procs for name in rotated(active, rep)]

    for rep, (n, name), run_dir in fresh_runs(repeat, order, "mplog-bench-", directory):
        if out is not None:
            out.write(f"  [{len(measurements) + 1:>3}/{total}] rep {rep + 1}/{repeat}")
            out.write(f" {n:>3} procs {name:<19}")
            out.flush()
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
        measurements.append(m)
        if out is not None:
            lost = "-" if m.check is None else m.check.lost
            out.write(f" {m.rate:>9,.0f} rec/s {m.elapsed:6.2f}s lost {lost}\n")
            out.flush()
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
        "procs": list(procs),
        "contenders": active,
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
            rss = [m.peak_rss for m in group if m.peak_rss is not None]
            checks = [m.check for m in group if m.check is not None]
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
                    lost=max((c.lost for c in checks), default=None),
                    duplicated=max((c.duplicated for c in checks), default=None),
                    torn=max((c.torn for c in checks), default=None),
                    errors=max(m.errors for m in group),
                    files=max((len(c.files) for c in checks), default=None),
                    p99_emit_ns=round(statistics.median(m.p99_emit_ns for m in group)),
                    p999_emit_ns=round(statistics.median(m.p999_emit_ns for m in group)),
                    peak_rss=max(rss) if rss else None,
                )
            )
    return summaries


_HEADER = (
    f"{'contender':<19} {'records/s':>10} {'vs FH':>6} {'spread':>6} {'lost':>7} {'dup':>5} "
    f"{'torn':>5} {'err':>4} {'files':>5} {'p99 emit':>10} {'p99.9 emit':>10} {'peak RSS':>10}"
)


def format_tables(result: BenchResult) -> str:
    """Render the summaries as one plain-text table per process count, then a legend."""
    repeat = result.environment.get("repeat", "?")
    lines: list[str] = []
    for n in dict.fromkeys(s.procs for s in result.summaries):
        rows = [s for s in result.summaries if s.procs == n]
        title = f"{n} process{'es' if n > 1 else ''} x {rows[0].records:,} records"
        lines += ["", f"{title} (median of {repeat})", _HEADER, "-" * len(_HEADER)]
        for s in rows:
            ratio = f"{s.ratio:.2f}" if s.ratio is not None else "-"
            rss = f"{s.peak_rss / 2**20:.1f} MiB" if s.peak_rss is not None else "-"
            lost, dup, torn, files = (
                "-" if v is None else str(v) for v in (s.lost, s.duplicated, s.torn, s.files)
            )
            lines.append(
                f"{s.contender:<19} {s.rate:>10,.0f} {ratio:>6} {s.spread:>6.0%} {lost:>7} "
                f"{dup:>5} {torn:>5} {s.errors:>4} {files:>5} "
                f"{_duration(s.p99_emit_ns):>10} {_duration(s.p999_emit_ns):>10} {rss:>10}"
            )
    lines += [
        "",
        "records/s and p99 emit: medians over the repetitions; vs FH: ratio to FileHandler",
        "in the same repetition; lost, dup, torn: worst repetition, after reading every file",
        "back (-: nothing written); p99 emit, p99.9 emit: median over the workers of each",
        "one's p99 (p99.9) logger.info duration; peak RSS: largest ru_maxrss of one process.",
        "spread: (fastest - slowest) / median records/s over the repetitions; a large spread",
        "means a noisy machine, so compare the ratios. err: records the handler reported",
        "through handleError (worst repetition). files: log files left after the run, the",
        "active one and its backups (most in one repetition).",
    ]
    for name in dict.fromkeys(s.contender for s in result.summaries):
        lines += textwrap.wrap(
            CONTENDERS[name].description, 92, initial_indent=f"{name}: ", subsequent_indent="  "
        )
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines).lstrip("\n")


def _duration(ns: int) -> str:
    return f"{ns / 1e3:.1f} us" if ns < 1_000_000 else f"{ns / 1e6:.2f} ms"


def write_json(result: BenchResult, path: str) -> None:
    """Write *result* (every measurement and the summaries) to *path* as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(asdict(result), f, indent=2)
        f.write("\n")
