"""benchmarks/compression_latency.py: what it runs, prints and writes; never how fast it is."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from typing import Any

import pytest

from conftest import run_benchmark

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the benchmark forks")

CONTENDERS = ["mplog-nocompress", "mplog", "clh"]
HAVE_CLH = importlib.util.find_spec("concurrent_log_handler") is not None
ROTATIONS = 2
PROCS = 2


@dataclasses.dataclass
class TinyRun:
    status: int
    stdout: str
    stderr: str
    data: dict[str, Any]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One small run of every contender, shared by the tests that only read its output."""
    out = tmp_path_factory.mktemp("compression") / "out.json"
    done = run_benchmark(
        "compression_latency.py",
        *("--size", "200KB", "--rotations", str(ROTATIONS), "--procs", str(PROCS)),
        *("--repeat", "1", "--json", str(out)),
    )
    data = json.loads(out.read_text()) if out.exists() else {}
    return TinyRun(done.returncode, done.stdout, done.stderr, data)


def _expected() -> list[str]:
    return CONTENDERS if HAVE_CLH else CONTENDERS[:2]


@pytest.mark.timeout(120)
def test_a_tiny_run_succeeds_and_prints_a_row_per_contender(tiny_run: TinyRun) -> None:
    assert tiny_run.status == 0, tiny_run.stderr
    first_words = [line.split()[0] for line in tiny_run.stdout.splitlines() if line.split()]
    for name in _expected():
        assert first_words.count(name) == 2  # both tables
    assert ("note: clh skipped" in tiny_run.stdout) is not HAVE_CLH
    assert "rep 1 mplog " in tiny_run.stderr  # progress goes to stderr


@pytest.mark.timeout(120)
def test_the_json_is_well_formed(tiny_run: TinyRun) -> None:
    data = tiny_run.data
    assert set(data) == {"environment", "notes", "summaries", "runs"}
    env = data["environment"]
    assert env["contenders"] == _expected()
    assert (env["procs"], env["rotations"], env["size"], env["repeat"]) == (PROCS, 2, 200_000, 1)
    assert [s["contender"] for s in data["summaries"]] == _expected()
    assert sorted(r["contender"] for r in data["runs"]) == sorted(_expected())
    for run in data["runs"]:
        latency = run["latency"]
        assert latency["samples"] == PROCS * run["records"]
        assert latency["p50"] <= latency["p99"] <= latency["p999"] <= latency["max"]
        assert len(run["writers"]) == PROCS
        assert sum(w["samples"] for w in run["writers"]) == latency["samples"]
        assert run["rate"] > 0
        compressing = run["contender"] != "mplog-nocompress"
        assert (run["during"] is not None) is compressing
        if compressing:
            during = run["during"]["own"]["samples"] + run["during"]["other"]["samples"]
            assert 0 < during <= latency["samples"]


@pytest.mark.timeout(120)
def test_no_record_is_lost_and_every_backup_is_compressed(tiny_run: TinyRun) -> None:
    for run in tiny_run.data["runs"]:
        check = run["check"]
        assert check["written"] == PROCS * run["records"], run["contender"]
        assert (check["found"], check["lost"], check["duplicated"], check["torn"]) == (
            check["written"],
            0,
            0,
            0,
        ), run["contender"]
        assert check["stray"] == [], run["contender"]  # no temporary file left behind
        assert run["errors"] == 0, run["contender"]
        assert check["backups"] == ROTATIONS, run["contender"]
        compressed = 0 if run["contender"] == "mplog-nocompress" else ROTATIONS
        assert check["compressed"] == compressed, run["contender"]


@pytest.mark.timeout(60)
def test_an_unknown_contender_is_refused_with_a_note() -> None:
    done = run_benchmark(
        "compression_latency.py", "--contenders", "nonesuch", "--size", "50KB", "--repeat", "1"
    )
    assert done.returncode == 2
    assert "note: nonesuch skipped: unknown contender" in done.stderr
    assert done.stdout == ""


def test_a_bad_size_is_refused_naming_it() -> None:
    done = run_benchmark("compression_latency.py", "--size", "lots")
    assert done.returncode == 2
    assert "--size='lots'" in done.stderr
