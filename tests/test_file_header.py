"""header=: a line that starts every new file, so that shippers that fingerprint a
file by its first bytes tell every file apart."""

from __future__ import annotations

import logging
import multiprocessing
import re
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import mp_workers  # noqa: E402
import mplog  # noqa: E402
from helpers import BASE, log_files, make_record, reap  # noqa: E402

HEADER = "# log file {id} from {host}, pid {pid}, {time}"
HEADER_LINE = re.compile(rb"# log file ([0-9a-f]{16}) from [^,]+, pid (\d+), \S+\n")
COUNT = 400
FINGERPRINT = 1000  # bytes: the OpenTelemetry Collector's filelog receiver


def _worker(path: str, options: dict[str, object], worker: int) -> None:
    logger = mp_workers.make_logger(path, options, f"header.{worker}")
    mp_workers.emit_many(logger, worker, range(COUNT), "small")
    mp_workers.close_logger(logger)


@pytest.mark.parametrize("batched", [False, True], ids=["sync", "batched"])
def test_every_file_starts_with_one_header_line_of_its_own(tmp_path: Path, batched: bool) -> None:
    """Three processes rotate one log by size: every file starts with exactly one header
    line, each with its own id, written by one of the writers; no header line is
    anywhere else; and every record is there once, in order."""
    options = {"maxBytes": 4096, "backupCount": 200, "header": HEADER, "batched": batched}
    ctx = multiprocessing.get_context("fork")
    path = str(tmp_path / BASE)
    processes = [ctx.Process(target=_worker, args=(path, options, w)) for w in range(3)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
            assert process.exitcode == 0
    finally:
        reap(processes)
    files = log_files(tmp_path)
    assert len(files) > 5, "the log never rotated"
    ids, records = [], []
    for file in files:
        data = file.path.read_bytes()
        match = HEADER_LINE.match(data)
        assert match, f"{file.path.name} starts with {data[:60]!r}"
        assert int(match.group(2)) in {p.pid for p in processes}
        ids.append(match.group(1))
        body = data[match.end() :]
        assert not HEADER_LINE.search(body), f"{file.path.name}: a second header line"
        records += mp_workers.framed(body, file.path.name)
    assert len(set(ids)) == len(ids), "two files share an id"
    for worker in range(3):
        assert [seq for w, seq in records if w == worker] == list(range(COUNT))


@pytest.mark.parametrize("batched", [False, True], ids=["sync", "batched"])
def test_the_header_line_counts_towards_max_bytes(tmp_path: Path, batched: bool) -> None:
    """A file rotated by size is never larger than maxBytes for its header line (here
    40 bytes: the 23-byte line and one 9-byte record fit, a second record does not),
    also when batched mode writes a batch of records across rotations.  (Review
    finding: the batch was split by the records' sizes alone, so each new file got the
    header line and four records, 59 bytes.)"""
    handler = mplog.ConcurrentRotatingFileHandler(
        str(tmp_path / BASE), maxBytes=40, backupCount=100, header="HEADER-LINE-0123456789"
    )
    records = [b"rec%05d\n" % n for n in range(30)]
    try:
        if batched:  # one batch, as the writer thread hands it over
            with handler._lock as shared:
                handler._rollover.write_batch(handler._file, shared, records)
        else:
            for record in records:
                handler._file.append(record)
    finally:
        handler.close()
    assert [file.path.read_bytes() for file in log_files(tmp_path)] == [
        b"HEADER-LINE-0123456789\n" + record for record in records
    ]


def _fill(path: Path, **options: object) -> list[bytes]:
    """Log the same records into files that rotate often; return each file's first bytes."""
    handler = mplog.ConcurrentRotatingFileHandler(
        str(path), maxBytes=2 * FINGERPRINT, backupCount=50, **options
    )
    handler.setFormatter(logging.Formatter("2026-12-06 10:00:00 INFO app: %(message)s"))
    try:
        for _ in range(200):
            handler.emit(make_record("request handled"))
    finally:
        handler.close()
    return [file.path.read_bytes()[:FINGERPRINT] for file in log_files(path.parent)]


def test_files_that_start_alike_get_different_fingerprints(tmp_path: Path) -> None:
    """Without a header, files of records that look alike share their first 1,000 bytes
    (a shipper takes them for one file); with one, no two files do."""
    (tmp_path / "plain").mkdir()
    (tmp_path / "marked").mkdir()
    plain = _fill(tmp_path / "plain" / BASE)
    marked = _fill(tmp_path / "marked" / BASE, header=HEADER)
    assert len(plain) > 3
    assert len(set(plain)) < len(plain)
    assert len(marked) == len(plain)
    assert len(set(marked)) == len(marked)


def test_a_function_makes_the_header_and_it_follows_the_byte_order_mark(tmp_path: Path) -> None:
    """A callable header is called for every new file; with a byte-order-mark encoding
    the mark comes first, then the header, then the records, all in that encoding."""
    lines = iter(f"header {n}" for n in range(100))
    handler = mplog.ConcurrentRotatingFileHandler(
        str(tmp_path / BASE),
        maxBytes=200,
        backupCount=10,
        encoding="utf-16",
        header=lambda: next(lines),
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.emit(make_record("first"))
        handler.doRollover()
        assert (tmp_path / BASE).read_bytes() == b"", "a header without a record"
        handler.emit(make_record("second"))
    finally:
        handler.close()
    assert (tmp_path / f"{BASE}.1").read_text("utf-16") == "header 0\nfirst\n"
    assert (tmp_path / BASE).read_text("utf-16") == "header 1\nsecond\n"


def test_a_header_template_with_an_unknown_field_is_refused() -> None:
    """A field that is not {id}, {host}, {pid} or {time} is named at construction."""
    with pytest.raises(ValueError, match=r"header=.*'hostname'.*\{id\}, \{host\}"):
        mplog.ConcurrentRotatingFileHandler("unused.log", delay=True, header="{hostname}")
    with pytest.raises(TypeError, match="header=42"):
        mplog.ConcurrentRotatingFileHandler("unused.log", delay=True, header=42)  # type: ignore[arg-type]
