"""benchmarks/interleaved.py: what it runs, prints and writes; never how fast it is."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import BENCHMARKS, run_benchmark

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the benchmark forks")

SCRIPT = BENCHMARKS / "interleaved.py"
HAVE_CLH = importlib.util.find_spec("concurrent_log_handler") is not None
ROUNDS, SLICE = 3, 150


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("interleaved", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_a_tiny_run_counts_every_record_and_reports_each_contender(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    contenders = ["filehandler", "mplog", "mplog-batched"] + (["clh"] if HAVE_CLH else [])
    done = run_benchmark(
        "interleaved.py",
        *("--procs", "1,2", "--slice", str(SLICE), "--rounds", str(ROUNDS)),
        *("--contenders", ",".join(contenders[1:]), "--json", str(out), "--quiet"),
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["environment"]["rounds"] == ROUNDS
    rows = data["rows"]
    assert [(r["procs"], r["contender"]) for r in rows] == [
        (procs, name) for procs in (1, 2) for name in contenders
    ]
    for row in rows:
        assert (row["lost"], row["duplicated"], row["torn"], row["errors"]) == (0, 0, 0, 0), row
        assert 0 < row["q1"] <= row["ratio"] <= row["q3"], row
        assert row["rate"] > 0
        assert row["cpu_us"] > 0
        assert row["busy"] > 0, row
        if row["contender"] == "filehandler":
            assert row["ratio"] == row["q1"] == row["q3"] == 1.0
    table_rows = [line.split()[0] for line in done.stdout.splitlines() if line.split()]
    for name in contenders:
        assert table_rows.count(name) == 2, done.stdout  # one row per process count


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--procs", "0"], "at least 1"),
        (["--procs", "two"], "'two'"),
        (["--slice", "0"], "'0' must be at least 1"),
        (["--max-bytes", "lots"], "'lots'"),
        (["--contenders", "mplog,bogus"], "'bogus'"),
        (["--contenders", "queuelistener"], "'queuelistener'"),
    ],
)
def test_bad_options_are_rejected_naming_the_value(args: list[str], message: str) -> None:
    done = run_benchmark("interleaved.py", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_each_contender_leads_a_round_in_turn() -> None:
    order = _module().order
    rounds = [order(3, r) for r in range(3)]
    assert rounds == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert all(sorted(r) == [0, 1, 2] for r in rounds)
