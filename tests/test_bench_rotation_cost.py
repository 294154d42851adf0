"""benchmarks/rotation_cost.py: what it runs, prints and writes; never how fast it is."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_benchmark

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the benchmark forks")

COUNTS = [10, 100_000]
PROCS, RECORDS = 2, 300


@pytest.mark.timeout(120)
def test_a_tiny_run_rotates_and_reports_each_backup_count(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    done = run_benchmark(
        "rotation_cost.py",
        *("--counts", ",".join(map(str, COUNTS)), "--procs", str(PROCS)),
        *("--records", str(RECORDS), "--max-bytes", "4KB", "--max-total-size", "8KB"),
        *("--repeat", "1", "--json", str(out)),
    )
    assert done.returncode == 0, done.stderr
    assert "rep 1 backupCount=100000" in done.stderr  # progress goes to stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("backupCount"))
    rows = lines[header + 2 : lines.index("", header)]  # after the dashes, to the blank line
    assert [row.split()[0] for row in rows] == ["10", "100,000"]
    data: dict[str, Any] = json.loads(out.read_text())
    env = data["environment"]
    assert (env["procs"], env["records"], env["counts"]) == (PROCS, RECORDS, COUNTS)
    assert (env["max_bytes"], env["max_total_size"]) == (4000, 8000)
    assert [row["count"] for row in data["rows"]] == COUNTS
    for run in data["runs"]:
        # ~150-byte records, 4,000 bytes a file: a rotation every ~26 records
        assert run["rotations"] >= PROCS * RECORDS * 150 // 4000 // 2, run
        assert run["listings"] >= run["rotations"]  # retention lists at each rotation
        assert run["p50"] <= run["p99"] <= run["p999"] <= run["max"]
        assert run["rotation_p50"] <= run["rotation_p99"]
        check = run["check"]
        assert (check["duplicated"], check["torn"], run["errors"]) == (0, 0, 0), run
        assert check["backups"] > 0
        assert check["compressed"] == check["backups"]
        assert 0 < check["found"] < PROCS * RECORDS  # retention deleted the oldest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--counts", "10,x"], "'10,x'"),
        (["--counts", "0"], "'0'"),
        (["--records", "0"], "'0' must be at least 1"),
        (["--max-total-size", "lots"], "'lots'"),
        (["--max-bytes", "0"], "'0' must be more than zero"),
    ],
)
def test_bad_options_are_rejected_naming_the_value(args: list[str], message: str) -> None:
    done = run_benchmark("rotation_cost.py", *args)
    assert done.returncode == 2
    assert message in done.stderr
