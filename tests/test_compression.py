"""Compression of rotated files (``compress=``): the codecs and callable compressors, what
the background compressor does with a backup that another process is compressing or a
crash left behind, and several processes compressing at once.

Compression runs in a background thread: ``close()`` waits for it and compresses
whatever is left, so the tests check the compressed backups after ``close()`` (a test
that needs them before the next rotation closes the handler and opens a new one, a
"session").  Nothing here asserts a duration.

Elsewhere: retention, which deletes backups in every form, in test_retention.py; how
compressed backups are named and shifted, in test_rotation_naming.py; the modes of what
compression makes, in test_permissions.py; crashes and races around compression, in
test_compression_faults.py.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import mplog._backups
import mplog._compressors
from helpers import (
    BASE,
    DAY,
    RECORD,
    ReportingHandler,
    claimed,
    gzip2,
    gzip_file,
    info_record,
    names_in,
    plain_file,
    read_log,
    record_numbers_in,
    record_text,
    rotate_once,
    size_named,
    write_records,
)
from mplog._compressors import Compressor

# Child processes import their entry points by module name (spawn): put this
# directory on sys.path, which multiprocessing hands on to them.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
mp_workers = importlib.import_module("mp_workers")


_MAGIC = {".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ\x00"}


def _zstd_available() -> bool:
    try:
        mplog._compressors._zstd_module()
    except ImportError:
        return False
    return True


ZSTD = _zstd_available()


# -- helpers ---------------------------------------------------------------------------------


def _temp_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if ".mplog-" in name]


# -- codecs ----------------------------------------------------------------------------------


CODECS = [
    ("gzip", ".gz"),
    ("bz2", ".bz2"),
    ("xz", ".xz"),
    pytest.param(
        "zstd",
        ".zst",
        marks=pytest.mark.skipif(not ZSTD, reason="no zstd: Python < 3.14, no zstandard"),
    ),
]


@pytest.mark.parametrize(("codec", "suffix"), CODECS)
def test_every_backup_is_compressed_and_every_record_is_there_once(
    tmp_path: Path, codec: str, suffix: str
) -> None:
    """After close(), each backup exists only compressed with the codec's suffix (and really
    in its format), and the backups plus the active file hold every record once, in order."""
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=4 * RECORD, backupCount=50, compress=codec, compress_delay=0
    )
    try:
        write_records(handler, range(60))
    finally:
        handler.close()
    files = size_named(tmp_path, suffix)
    assert len(files) - 1 == 14  # 4 records per file: 15 files
    for backup in files[:-1]:
        if suffix in _MAGIC:
            assert backup.read_bytes().startswith(_MAGIC[suffix]), backup.name
    per_file = record_numbers_in(files)
    assert [n for numbers in per_file for n in numbers] == list(range(60))
    assert all(len(numbers) == 4 for numbers in per_file)
    assert handler.reports == []
    assert _temp_files(tmp_path) == []


def test_zstd_without_a_backend_fails_at_construction_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without compression.zstd (3.14) or zstandard, compress='zstd' raises ImportError naming
    zstd and how to get it, before any file is created."""
    monkeypatch.setitem(sys.modules, "compression", None)  # `from compression import zstd` fails
    monkeypatch.setitem(sys.modules, "compression.zstd", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ImportError, match="zstd") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, compress="zstd")
    assert "zstandard" in str(info.value)
    assert os.listdir(tmp_path) == []


# -- options ---------------------------------------------------------------------------------


def test_use_gzip_is_compress_gzip(tmp_path: Path) -> None:
    """concurrent-log-handler's use_gzip=True gives the gzip compressor and .gz backups."""
    assert Compressor.parse(None, use_gzip=True) == Compressor.parse("gzip")
    assert Compressor.parse("gzip", use_gzip=True) == Compressor.parse("gzip")
    assert Compressor.parse(None) is None
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=3, use_gzip=True, compress_delay=0
    )
    try:
        assert handler._compressor is not None
        assert handler._compressor.name == "gzip"
        write_records(handler, range(3))
    finally:
        handler.close()
    assert record_numbers_in(size_named(tmp_path, ".gz")) == [[0], [1], [2]]


def test_use_gzip_and_another_compress_disagree(tmp_path: Path) -> None:
    """use_gzip=True with compress='bz2' is refused, naming both, before any file exists."""
    with pytest.raises(ValueError, match=r"use_gzip=True") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, use_gzip=True, compress="bz2")
    assert "compress='bz2'" in str(info.value)
    assert os.listdir(tmp_path) == []


def _no_dot(path: str) -> str:
    return path + ".lz4"


_no_dot.suffix = "lz4"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("compress", "fragment"),
    [
        ("zip", "compress='zip'"),
        ("", "compress=''"),
        ("gz", "compress='gz'"),
        (3, "compress=3"),
        (b"gzip", "compress=b'gzip'"),
        (_no_dot, "suffix attribute"),
    ],
)
def test_bad_compress_values_are_refused_naming_them(
    tmp_path: Path, compress: Any, fragment: str
) -> None:
    """An unknown codec, a non-string or a callable with a malformed suffix: ValueError."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        mplog.ConcurrentRotatingFileHandler(tmp_path / BASE, compress=compress)
    assert os.listdir(tmp_path) == []


def test_codec_names_are_case_insensitive() -> None:
    """'GZIP' and 'Xz' name the built-in codecs (config files vary in case)."""
    assert Compressor.parse("GZIP") == Compressor.parse("gzip")
    compressor = Compressor.parse("Xz")
    assert compressor is not None
    assert (compressor.name, compressor.suffix) == ("xz", ".xz")


def test_a_callable_compressor_names_backups_with_its_suffix(tmp_path: Path) -> None:
    """A callable's output becomes <backup><suffix>; its compressed backups shift with their
    number in later sessions and count towards backupCount."""
    number = 0
    for _session in range(5):
        handler = ReportingHandler(
            tmp_path / BASE, maxBytes=RECORD, backupCount=3, compress=gzip2, compress_delay=0
        )
        try:
            assert handler._compressor is not None
            assert handler._compressor.suffix == ".gz2"
            rotate_once(handler, number)
            number += 2
        finally:
            handler.close()
        assert handler.reports == []
    files = size_named(tmp_path, ".gz2")
    assert record_numbers_in(files) == [[6], [7], [8], [9]]
    assert _temp_files(tmp_path) == []


def test_a_callable_returning_a_wrong_path_is_reported_and_the_backup_kept(
    tmp_path: Path,
) -> None:
    """A callable that returns something other than its input plus a suffix: the failure goes
    to handleError once, the backups stay uncompressed and intact, nothing is left behind."""
    calls: list[str] = []

    def in_place(path: str) -> str:
        calls.append(path)
        return path  # not path + suffix

    in_place.suffix = ".x"  # type: ignore[attr-defined]
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=in_place, compress_delay=0
    )
    try:
        write_records(handler, range(3))
    finally:
        handler.close()
    assert calls, "the callable was never called"
    assert all(os.path.basename(path).startswith(f".{BASE}.mplog-") for path in calls)
    assert len(handler.reports) == 1
    message, error = handler.reports[0]
    assert isinstance(error, ValueError)
    assert "returned" in message
    assert names_in(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.2"]
    assert record_numbers_in(size_named(tmp_path, "")) == [[0], [1], [2]]


@pytest.mark.timeout(60)
def test_a_callable_raising_systemexit_is_reported_and_compression_goes_on(
    tmp_path: Path,
) -> None:
    """A compress callable that raises SystemExit in the background thread is reported,
    and the next rotation's backups are compressed before close().  (threading ends a
    thread on SystemExit without a word: nothing was reported, and the dead thread kept
    later rotations from starting another until close().)"""
    calls: list[str] = []

    def pack(path: str) -> str:
        calls.append(path)
        if len(calls) == 1:
            raise SystemExit(3)
        return gzip2(path)

    pack.suffix = ".gz2"  # type: ignore[attr-defined]

    def compressed_in_background() -> None:
        for thread in threading.enumerate():
            if thread.name == "mplog-compress":
                thread.join(30)

    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=pack, compress_delay=0
    )
    try:
        write_records(handler, range(2))  # one rotation: the callable raises
        compressed_in_background()
        assert [type(error) for _, error in handler.reports] == [SystemExit]
        write_records(handler, range(2, 3))  # another rotation
        compressed_in_background()
        assert any(name.endswith(".gz2") for name in names_in(tmp_path))
    finally:
        handler.close()


def test_a_wrong_path_returned_by_a_callable_is_not_deleted(tmp_path: Path) -> None:
    """A callable that returns an unrelated existing file does not get that file deleted."""
    precious = plain_file(tmp_path / "precious.txt", b"keep me")

    def wrong(path: str) -> str:
        return str(precious)

    wrong.suffix = ".x"  # type: ignore[attr-defined]
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=wrong, compress_delay=0
    )
    try:
        write_records(handler, range(2))
    finally:
        handler.close()
    assert len(handler.reports) == 1
    assert precious.read_bytes() == b"keep me"


def test_a_callable_returning_a_wrong_path_leaves_no_output_behind(tmp_path: Path) -> None:
    """The callable wrote its output but returned its input: no hidden file is left."""

    def forgot_suffix(path: str) -> str:
        gzip2(path)
        return path

    forgot_suffix.suffix = ".gz2"  # type: ignore[attr-defined]
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=forgot_suffix, compress_delay=0
    )
    try:
        write_records(handler, range(3))
    finally:
        handler.close()
    assert len(handler.reports) == 1
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("suffix", [None, "", "lz4", ".", 4])
def test_a_callable_needs_a_suffix_attribute(tmp_path: Path, suffix: object) -> None:
    """Without a valid suffix attribute, processes that have not compressed anything yet could
    not recognize (shift, prune) the compressed backups: refused at construction, naming it."""

    def lz4ish(path: str) -> str:
        return gzip2(path)

    if suffix is not None:
        lz4ish.suffix = suffix  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="suffix attribute"):
        ReportingHandler(
            tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress=lz4ish, compress_delay=0
        )
    assert not (tmp_path / BASE).exists()


# -- claims ----------------------------------------------------------------------------------


def test_a_claimed_backup_is_left_to_its_claimant_by_the_compressor(tmp_path: Path) -> None:
    """The archiver skips a backup someone else is compressing; a later close compresses it."""
    plain_file(tmp_path / f"{BASE}.1", record_text(1).encode() + b"\n")
    plain_file(tmp_path / f"{BASE}.2", record_text(0).encode() + b"\n")
    with claimed(tmp_path / f"{BASE}.2"):
        handler = ReportingHandler(
            tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
        )
        handler.close()  # sweeps: .1 compressed, .2 skipped
        assert names_in(tmp_path) == [BASE, f"{BASE}.1.gz", f"{BASE}.2"]
    assert handler.reports == []
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    handler.close()
    assert names_in(tmp_path) == [BASE, f"{BASE}.1.gz", f"{BASE}.2.gz"]
    assert record_numbers_in(size_named(tmp_path, ".gz")[:-1]) == [[0], [1]]


def test_a_backup_shifted_out_while_being_compressed_is_not_committed(tmp_path: Path) -> None:
    """backupCount=1: the rotation deletes .1 while the compressor is working on it.  Its
    compressed copy is dropped, not committed under the name the new .1 now has."""
    entered, release = threading.Event(), threading.Event()

    def slow(path: str) -> str:
        if not entered.is_set():  # only the first call waits
            entered.set()
            assert release.wait(30), "the test never released the compressor"
        return gzip2(path)

    slow.suffix = ".gz2"  # type: ignore[attr-defined]
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=1, compress=slow, compress_delay=0
    )
    try:
        write_records(handler, [0, 1])  # record 0 -> .1, being compressed by the background thread
        assert entered.wait(30), "the compressor never started"
        handler.emit(info_record(record_text(2)))  # record 1 -> .1; record 0's file is deleted
        release.set()
    finally:
        release.set()
        handler.close()
    assert handler.reports == []
    assert record_numbers_in(size_named(tmp_path, ".gz2")) == [[1], [2]]
    assert _temp_files(tmp_path) == []


def test_an_interrupted_commit_and_stale_temp_files_are_cleaned_up(tmp_path: Path) -> None:
    """A crash between the commit's rename and remove leaves .2 and an equal .2.gz: the plain
    one is removed.  An unlocked temporary file of a dead compression is removed.  A .3 whose
    .3.gz differs is left alone and reported."""
    data = record_text(0).encode() + b"\n"
    plain_file(tmp_path / f"{BASE}.2", data)
    gzip_file(tmp_path / f"{BASE}.2.gz", data)
    plain_file(tmp_path / f"{BASE}.3", b"one thing\n")
    gzip_file(tmp_path / f"{BASE}.3.gz", b"another\n")
    plain_file(tmp_path / f".{BASE}.mplog-999999999-0badcafe.tmp", b"half")
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    handler.close()
    assert names_in(tmp_path) == [BASE, f"{BASE}.2.gz", f"{BASE}.3", f"{BASE}.3.gz"]
    assert [type(error) for _message, error in handler.reports] == [FileExistsError]
    assert (tmp_path / f"{BASE}.3").read_bytes() == b"one thing\n"


def test_one_backup_that_cannot_be_compressed_does_not_block_the_older_ones(
    tmp_path: Path,
) -> None:
    """A conflict on .1 (its .1.gz differs) is reported and .1 left alone; the sweep goes on
    and the older .2 and .3 are still compressed."""
    plain_file(tmp_path / f"{BASE}.1", b"one thing\n")
    gzip_file(tmp_path / f"{BASE}.1.gz", b"another\n")
    plain_file(tmp_path / f"{BASE}.2", record_text(1).encode() + b"\n")
    plain_file(tmp_path / f"{BASE}.3", record_text(0).encode() + b"\n")
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    handler.close()
    assert [type(error) for _message, error in handler.reports] == [FileExistsError]
    assert names_in(tmp_path) == [BASE, f"{BASE}.1", f"{BASE}.1.gz", f"{BASE}.2.gz", f"{BASE}.3.gz"]


def test_a_compressed_backup_keeps_its_sources_mtime_for_retention(tmp_path: Path) -> None:
    """The .gz gets the time its source was last written (not the time of compression), so
    max_age ages it from its last record."""
    old = time.time() - 3 * DAY
    handler = ReportingHandler(
        tmp_path / BASE, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0
    )
    try:
        handler.emit(info_record(record_text(0)))
        os.utime(tmp_path / BASE, (old, old))
        handler.emit(info_record(record_text(1)))  # rotates the old file to .1
    finally:
        handler.close()
    assert (tmp_path / f"{BASE}.1.gz").stat().st_mtime == pytest.approx(old, abs=1e-3)
    handler = ReportingHandler(tmp_path / BASE, maxBytes=RECORD, backupCount=5, max_age="2 days")
    try:
        assert handler.getFilesToDelete() == [str(tmp_path / f"{BASE}.1.gz")]
    finally:
        handler.close()


# -- several processes -----------------------------------------------------------------------


_framed = mp_workers.framed


def _time_named(directory: Path) -> list[Path]:
    """Time-named backups (all .gz), in rotation order, then the active file."""
    pattern = re.compile(re.escape(BASE) + r"\.(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)(?:\.(\d+))?\.gz")
    keyed = []
    for name in set(names_in(directory)) - {BASE}:
        match = pattern.fullmatch(name)
        assert match, f"unexpected file {name!r}"
        keyed.append(((match.group(1), int(match.group(2) or 0)), directory / name))
    by_period: dict[str, list[int]] = defaultdict(list)
    for (period, counter), _path in sorted(keyed):
        by_period[period].append(counter)
    for period, counters in by_period.items():
        assert counters == list(range(len(counters))), f"{period}: counters {counters}"
    return [path for _key, path in sorted(keyed)] + [directory / BASE]


def _run(ctx: Any, arglists: Sequence[tuple[Any, ...]]) -> None:
    """Run mp_workers.fixed_worker once per argument tuple, released together."""
    barrier = ctx.Barrier(len(arglists) + 1)
    processes = [
        ctx.Process(target=mp_workers.fixed_worker, args=(*args, barrier), daemon=True)
        for args in arglists
    ]
    try:
        for process in processes:
            process.start()
        barrier.wait(60)
        for process in processes:
            process.join(90)
    finally:
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.kill()
                process.join(5)
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork and spawn scenarios (POSIX)")
@pytest.mark.parametrize(
    ("method", "batched", "when"),
    [
        ("fork", False, None),
        ("spawn", False, None),
        ("fork", True, None),
        ("spawn", True, None),
        ("fork", False, "S"),
    ],
    ids=["fork", "spawn", "fork-batched", "spawn-batched", "fork-time-names"],
)
def test_processes_leave_every_backup_compressed_and_every_record_once(
    tmp_path: Path, method: str, batched: bool, when: str | None
) -> None:
    """4 processes, maxBytes=4096, gzip: once they have closed their handlers no backup is
    uncompressed, no temporary file is left, and the files hold each (worker, seq) exactly
    once, in per-worker order."""
    workers, count = 4, 2500
    kwargs: dict[str, Any] = {
        "maxBytes": 4096,
        "compress": "gzip",
        "compress_delay": 0,
        "batched": batched,
    }
    if when is None:
        kwargs["backupCount"] = 1000  # keep all (~200 are made): nothing may be lost
    else:
        kwargs.update(when=when, backupCount=0, utc=True)
    ctx = multiprocessing.get_context(method)
    _run(ctx, [(str(tmp_path / BASE), kwargs, w, count, 60) for w in range(workers)])
    assert _temp_files(tmp_path) == []
    files = size_named(tmp_path, ".gz") if when is None else _time_named(tmp_path)
    assert len(files) > 100  # many rotations, many compressions racing them
    seqs: dict[int, list[int]] = defaultdict(list)
    for path in files:
        for worker, seq in _framed(read_log(path), path.name):
            seqs[worker].append(seq)
    assert sorted(seqs) == list(range(workers))
    for worker, got in seqs.items():
        assert got == list(range(count)), f"worker {worker}: lost, doubled or out of order"


# -- the compression thread ------------------------------------------------------------------


def test_the_compression_thread_is_never_a_daemon(tmp_path: Path) -> None:
    """In batched mode the rotation happens in the (daemon) writer thread; the compression
    thread it starts must not inherit that, or a multiprocessing child's exit kills it."""
    started = threading.Event()
    release = threading.Event()
    handler = mplog.ConcurrentRotatingFileHandler(
        tmp_path / BASE,
        maxBytes=RECORD,
        backupCount=5,
        compress="gzip",
        compress_delay=0,
        batched=True,
    )
    assert handler._archiver is not None
    real_sweep = handler._archiver.sweep

    def slow_sweep() -> None:
        started.set()
        release.wait(30)
        real_sweep()

    handler._archiver.sweep = slow_sweep  # type: ignore[method-assign]
    try:
        write_records(handler, range(3))
        handler.flush()
        assert started.wait(30), "no compression started"
        threads = [t for t in threading.enumerate() if t.name == "mplog-compress"]
        assert threads
        assert not any(t.daemon for t in threads)
    finally:
        release.set()
        handler.close()
