"""benchmarks/breakdown.py: which steps it times and what it prints; never how fast they are."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import run_benchmark

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and pread are POSIX")

STEPS = [
    "logger.info up to emit",
    "of which os.getpid",
    "formatting",
    "encoding",
    "thread lock pair",
    "flock lock+unlock",
    "time.time",
    "pread header",
    "lseek SEEK_END",
    "pwrite size, write end",
    "write",
    "FileHandler write+flush",
    "Python in emit and append",
]


@pytest.mark.timeout(120)
def test_a_tiny_run_prints_every_step_and_the_sums(tmp_path: Path) -> None:
    """Each step of the sync path has a row with a time and what it buys; the sums for
    mplog and FileHandler stand next to their measured logging calls; the temporary
    directory is gone afterwards."""
    done = run_benchmark("breakdown.py", "--records", "50", "--repeat", "1", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = lines[lines.index(next(x for x in lines if x.startswith("step"))) + 2 :]
    names = [row[:26].strip() for row in rows[: len(STEPS)]]
    assert names == STEPS
    for row in rows[: len(STEPS)]:
        time, unit = row[26:36].split()
        assert unit == "us"
        float(time)  # the "Python in emit and append" remainder may be negative
        assert len(row) > 50, row  # a guarantee follows the marks
    assert rows[len(STEPS)].startswith("-")
    assert rows[len(STEPS) + 1].startswith("sum, mplog sync")
    assert "measured logger.info:" in rows[len(STEPS) + 1]
    assert rows[len(STEPS) + 2].startswith("sum, FileHandler")
    assert "records/s of mplog sync / FileHandler" in rows[len(STEPS) + 3]
    assert list(tmp_path.iterdir()) == []


def test_bad_counts_are_refused() -> None:
    """--records and --repeat below 1 stop the script with status 2, naming them."""
    done = run_benchmark("breakdown.py", "--records", "0")
    assert done.returncode == 2
    assert "--records and --repeat must be >= 1" in done.stderr
