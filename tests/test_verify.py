"""mplog._readback.read_back: the one read-back check of demo, bench and the benchmark scripts."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

from mplog._bench_contenders import parse_record
from mplog._readback import read_back

LOG = "app.log"


def _records(writer: int, seqs: range) -> bytes:
    return b"".join(b"2024-01-10 INFO w=%d seq=%d xxx\n" % (writer, seq) for seq in seqs)


def test_backups_are_read_oldest_first_plain_or_compressed(tmp_path: Path) -> None:
    """Numbered backups from the highest number, whatever their compression, then the
    active file: records spread over them are found once each and in order."""
    (tmp_path / f"{LOG}.10.gz").write_bytes(gzip.compress(_records(0, range(0, 2))))
    (tmp_path / f"{LOG}.9.bz2").write_bytes(bz2.compress(_records(0, range(2, 4))))
    (tmp_path / f"{LOG}.2.xz").write_bytes(lzma.compress(_records(0, range(4, 6))))
    (tmp_path / f"{LOG}.1").write_bytes(_records(0, range(6, 8)))
    (tmp_path / LOG).write_bytes(_records(0, range(8, 10)))
    check = read_back(str(tmp_path), LOG, parse_record, 1, 10)
    assert check.files == [f"{LOG}.10.gz", f"{LOG}.9.bz2", f"{LOG}.2.xz", f"{LOG}.1", LOG]
    assert (check.found, check.lost, check.out_of_order, check.torn) == (10, 0, 0, 0)
    assert (check.backups, check.compressed) == (4, 3)
    assert check.ok


def test_time_named_backups_are_read_by_period_then_counter(tmp_path: Path) -> None:
    """<period>, <period>.1, <period>.2 ... then the next period: rotation order."""
    names = [f"{LOG}.2024-01-10", f"{LOG}.2024-01-10.1", f"{LOG}.2024-01-10.2.gz"]
    names.append(f"{LOG}.2024-01-11")
    for index, name in enumerate(names):
        data = _records(0, range(index, index + 1))
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    (tmp_path / LOG).write_bytes(b"")
    check = read_back(str(tmp_path), LOG, parse_record, 1, 4)
    assert check.files == [*names, LOG]
    assert (check.found, check.out_of_order) == (4, 0)


def test_damage_is_counted_and_other_files_are_stray(tmp_path: Path) -> None:
    """Two records run together, a record of no writer and a reordered one are counted;
    an oversized backup is named; lock files are expected, anything else is stray."""
    (tmp_path / f"{LOG}.1").write_bytes(_records(0, range(1, 3)) * 2)  # 4 lines, 2 doubled
    merged = _records(0, range(3, 4)).rstrip(b"\n") + _records(0, range(4, 5))
    (tmp_path / LOG).write_bytes(_records(0, range(0, 1)) + merged + _records(7, range(1)))
    for name in (".__app.lock", ".app.log.mplog-1-abcd.tmp", "app.log.old-copy", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    check = read_back(str(tmp_path), LOG, parse_record, 1, 5, max_bytes=10)
    assert (check.found, check.lost, check.duplicated) == (3, 2, 2)
    assert check.torn == 2  # the merged line, the record of writer 7
    assert check.out_of_order == 1  # seq 0 after seq 2
    assert check.oversized == [f"{LOG}.1"]  # the active file is never oversized
    assert check.stray == [".app.log.mplog-1-abcd.tmp", "app.log.old-copy", "notes.txt"]
    assert not check.ok
