"""``mplog bench``: what it runs, prints, writes and refuses; never how fast anything is."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from mplog import _bench as bench
from mplog._cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the benchmark forks")

EVERY_CONTENDER = [
    *("filehandler", "format-only", "mplog", "mplog-batched", "rotating", "queuelistener", "clh")
]
SAFE = ["mplog", "mplog-batched", "queuelistener"]  # must lose nothing
FSYNC = ["mplog-fsync", "filehandler-fsync", "mplog-fsync-1s", "mplog-batched-fsync"]  # opt-in
LOST = 3  # a row's cells after the name: records/s, vs FH, spread, lost, ...
P99, P999 = slice(8, 10), slice(10, 12)  # "123.4 us": two cells each


@dataclasses.dataclass
class TinyRun:
    status: int
    stdout: str
    stderr: str
    data: dict[str, Any]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One small run of every contender, shared by the tests that only read its output."""
    out = tmp_path_factory.mktemp("bench") / "out.json"
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["bench", "--procs", "1,2", "--records", "300", "--repeat", "1", "--json", str(out)]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(argv)
    return TinyRun(status, stdout.getvalue(), stderr.getvalue(), json.loads(out.read_text()))


def _tables(stdout: str) -> dict[int, dict[str, list[str]]]:
    """Process count -> contender -> the cells of its row, from the printed tables."""
    tables: dict[int, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in stdout.splitlines():
        words = line.split()
        if len(words) > 1 and words[0].isdigit() and words[1].startswith("process"):
            current = tables.setdefault(int(words[0]), {})
        elif not words:
            current = None
        elif current is not None and words[0] in (*EVERY_CONTENDER, *FSYNC):
            current[words[0]] = words[1:]
    return tables


@pytest.mark.timeout(120)
def test_a_tiny_run_prints_one_table_per_process_count_with_every_contender(
    tiny_run: TinyRun,
) -> None:
    """The run succeeds and each process count's table has a row for every contender."""
    assert tiny_run.status == 0
    tables = _tables(tiny_run.stdout)
    assert sorted(tables) == [1, 2]
    for rows in tables.values():
        assert list(rows) == EVERY_CONTENDER  # clh included: the test extra installs it
    assert "note:" not in tiny_run.stdout  # nothing skipped


@pytest.mark.timeout(120)
def test_the_safe_contenders_lose_nothing(tiny_run: TinyRun) -> None:
    """mplog, mplog batched and the queue listener show 0 lost, in the table and the JSON."""
    assert tiny_run.stdout.splitlines()[1].split()[:6] == [
        *("contender", "records/s", "vs", "FH", "spread", "lost")
    ]
    for procs, rows in _tables(tiny_run.stdout).items():
        for name in SAFE:
            assert rows[name][LOST] == "0", (procs, name, rows[name])
    for summary in tiny_run.data["summaries"]:
        if summary["contender"] in SAFE:
            assert (summary["lost"], summary["duplicated"], summary["torn"]) == (0, 0, 0)


@pytest.mark.timeout(120)
def test_the_format_only_floor_writes_nothing_and_is_not_read_back(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    """The format-only contender leaves no file; its checks are '-' in the table and
    null in the JSON, while its rate and latencies are measured like the others'."""
    for rows in _tables(tiny_run.stdout).values():
        cells = rows["format-only"]
        assert cells[LOST : LOST + 3] == ["-", "-", "-"]  # lost, dup, torn
        assert cells[LOST + 4] == "-"  # files
    floors = [s for s in tiny_run.data["summaries"] if s["contender"] == "format-only"]
    assert len(floors) == 2
    for s in floors:
        assert (s["lost"], s["duplicated"], s["torn"], s["files"]) == (None, None, None, None)
    m = bench.measure("format-only", 2, 50, str(tmp_path))
    assert m.check is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(120)
def test_every_row_shows_p99_and_p999_latency(tiny_run: TinyRun) -> None:
    """Next to p99, every row has the p99.9 of one logging call, never below its p99."""
    header = tiny_run.stdout.splitlines()[1]
    assert "p99 emit p99.9 emit" in header
    units = {"us": 1e3, "ms": 1e6}
    for rows in _tables(tiny_run.stdout).values():
        for name, cells in rows.items():
            (p99, u99), (p999, u999) = cells[P99], cells[P999]
            assert float(p99) * units[u99] <= float(p999) * units[u999], (name, cells)


@pytest.mark.timeout(120)
def test_the_json_output_has_the_documented_keys(tiny_run: TinyRun) -> None:
    """The JSON file holds the environment, notes, summaries and every measurement."""
    data = tiny_run.data
    assert set(data) == {"environment", "notes", "summaries", "measurements"}
    assert set(data["environment"]) == {
        "python",
        "platform",
        "cpus",
        "start_method",
        "max_bytes",
        "backup_count",
        "records_per_process",
        "repeat",
        "procs",
        "contenders",
    }
    assert data["environment"]["procs"] == [1, 2]
    assert data["notes"] == []
    summary_keys = {f.name for f in dataclasses.fields(bench.Summary)}
    assert summary_keys >= {
        "contender",
        "procs",
        "rate",
        "ratio",
        "lost",
        "p99_emit_ns",
        "p999_emit_ns",
    }
    assert all(set(s) == summary_keys for s in data["summaries"])
    assert len(data["summaries"]) == 2 * len(EVERY_CONTENDER)
    measurement_keys = {f.name for f in dataclasses.fields(bench.Measurement)}
    assert all(set(m) == measurement_keys for m in data["measurements"])
    assert len(data["measurements"]) == 2 * len(EVERY_CONTENDER)
    for s in data["summaries"]:
        assert s["rate"] > 0
        assert 0 < s["p99_emit_ns"] <= s["p999_emit_ns"]
        assert s["peak_rss"] > 0
        if s["contender"] == "filehandler":
            assert s["ratio"] == 1.0


@pytest.mark.timeout(120)
def test_progress_goes_to_stderr_and_quiet_silences_it(
    tiny_run: TinyRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """One progress line per measurement on stderr; none with --quiet."""
    assert len(tiny_run.stderr.splitlines()) == 2 * len(EVERY_CONTENDER)
    assert "[ 14/14]" in tiny_run.stderr
    argv = ["bench", "--procs", "1", "--records", "50", "--repeat", "1", "--quiet"]
    assert main([*argv, "--contenders", "filehandler,mplog"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.timeout(120)
def test_the_fsync_contenders_run_only_when_named(
    tiny_run: TinyRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default run leaves the fsync contenders out; named, they run next to the
    reference and lose nothing."""
    assert tiny_run.data["environment"]["contenders"] == EVERY_CONTENDER
    argv = ["bench", "--procs", "2", "--records", "100", "--repeat", "1", "-q"]
    assert main([*argv, "--contenders", ",".join(["filehandler", *FSYNC])]) == 0
    rows = _tables(capsys.readouterr().out)[2]
    assert list(rows) == ["filehandler", *FSYNC]
    assert all(cells[LOST] == "0" for cells in rows.values())


def test_the_fsync_peer_syncs_every_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """filehandler-fsync, the peer of fsync=True, syncs its file once per record, after
    writing it, before the call returns."""
    from mplog import _bench_contenders, _bench_handlers

    path = tmp_path / "peer.log"
    synced: list[int] = []

    def sync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(_bench_handlers, "_sync", sync)
    handler = _bench_contenders.make_handler("filehandler-fsync", str(path), 0, 0)
    logger, errors = _bench_contenders.writer_logger("bench.test.peer", handler, "%(message)s")
    logger.info("one")
    logger.info("two")
    handler.close()
    assert synced == [4, 8]  # each record was in the file when it was synced
    assert path.read_text() == "one\ntwo\n"
    assert errors.count == 0


@pytest.mark.timeout(120)
def test_spawned_workers_work_too(capsys: pytest.CaptureFixture[str]) -> None:
    """With the spawn start method the workers and the queue listener still deliver everything."""
    argv = ["bench", "--procs", "2", "--records", "100", "--repeat", "1", "-q"]
    argv += ["--start-method", "spawn", "--contenders", "mplog,queuelistener"]
    assert main(argv) == 0
    rows = _tables(capsys.readouterr().out)[2]
    assert list(rows) == ["mplog", "queuelistener"]
    assert all(cells[LOST] == "0" for cells in rows.values())


@pytest.mark.timeout(120)
def test_a_missing_concurrent_log_handler_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without concurrent-log-handler the other contenders run and a note says why clh did not."""
    monkeypatch.setitem(sys.modules, "concurrent_log_handler", None)
    argv = ["bench", "--procs", "1", "--records", "50", "--repeat", "1", "-q"]
    assert main([*argv, "--contenders", "filehandler,clh"]) == 0
    out = capsys.readouterr().out
    assert list(_tables(out)[1]) == ["filehandler"]
    assert "note: clh skipped: concurrent-log-handler is not installed" in out
    assert "pip install 'mplog[bench]'" in out


@pytest.mark.timeout(120)
def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--plot saves a PNG of records/s against the process count."""
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the plot extra)")
    png = tmp_path / "bench.png"
    argv = ["bench", "--procs", "1,2", "--records", "50", "--repeat", "1", "-q"]
    assert main([*argv, "--contenders", "filehandler,mplog", "--plot", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.timeout(30)
def test_a_missing_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without matplotlib, plotting raises an ImportError naming the extra, and the CLI
    refuses --plot before running anything."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    extra = "pip install 'mplog[plot]'"
    with pytest.raises(ImportError, match=r"pip install 'mplog\[plot\]'"):
        bench.require_matplotlib()
    result = bench.BenchResult(measurements=[], summaries=[])
    with pytest.raises(ImportError, match=r"pip install 'mplog\[plot\]'"):
        bench.plot(result, str(tmp_path / "never.png"))
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--records", "50", "--plot", str(tmp_path / "never.png")])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert extra in captured.err
    assert captured.out == ""
    assert not (tmp_path / "never.png").exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--procs", "0,x", "'0'"),
        ("--procs", "1,x", "'x'"),
        ("--procs", "", "''"),
        ("--records", "0", "'0'"),
        ("--records", "many", "'many'"),
        ("--repeat", "-1", "'-1'"),
        ("--contenders", "mplog,nope", "'nope'"),
        ("--max-bytes", "lots", "lots"),
        ("--start-method", "teleport", "'teleport'"),
        ("--json", "/nonexistent-mplog-dir/out.json", "/nonexistent-mplog-dir"),
        ("--plot", "/nonexistent-mplog-dir/bench.png", "/nonexistent-mplog-dir"),
        ("--plot", "/", "'/' is a directory"),
        ("--dir", "/nonexistent-mplog-dir", "'/nonexistent-mplog-dir'"),
    ],
)
def test_bad_options_exit_with_status_2_and_name_the_value(
    option: str, value: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option value stops the command before anything runs, quoting the value."""
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", option, value])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert f"argument {option}" in captured.err
    assert named in captured.err
    assert captured.out == ""


def _summary(contender: str, procs: int, rate: float, lost: int = 0) -> bench.Summary:
    return bench.Summary(
        contender, procs, 1000, rate, None, 0.1, 1.0, lost, 0, 0, 0, 3, 50_000, 90_000, None
    )


def test_the_plot_marks_contenders_that_lost_records() -> None:
    """A lossy contender is dashed and labelled 'lost N' where it lost records, however
    high its line; the legend sits outside the plot, off the lines."""
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the plot extra)")
    summaries = [
        _summary("mplog", 1, 900.0),
        _summary("mplog", 4, 1500.0),
        _summary("rotating", 1, 1000.0),
        _summary("rotating", 4, 2400.0, lost=3200),
    ]
    drawing = bench.figure(bench.BenchResult([], summaries, environment={"repeat": 1}))
    (axes,) = drawing.axes
    styles = {line.get_label(): line.get_linestyle() for line in axes.get_lines()}
    assert styles == {"mplog": "-", "rotating (LOSES RECORDS)": "--"}
    assert [text.get_text() for text in axes.texts] == ["lost 3,200"]
    assert tuple(axes.texts[0].xy) == (4, 2400.0)
    drawing.canvas.draw()
    legend = axes.get_legend().get_window_extent()
    assert legend.x0 >= axes.get_window_extent().x1, "the legend covers the plot"


def test_the_table_legend_explains_every_column(tiny_run: TinyRun) -> None:
    """The output explains spread, err and files, not only the obvious columns."""
    for column in ("spread: ", "err: ", "files: "):
        assert column in tiny_run.stdout


def test_the_benchmark_scripts_import_no_private_name_of_a_public_module() -> None:
    """The scripts in benchmarks/ use what the package offers them: public names, or the
    modules kept for them (``mplog._bench_runner``), never a private helper of a public
    module (the command's argument types once were)."""
    import ast

    from conftest import BENCHMARKS

    offending = []
    for script in sorted(BENCHMARKS.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mplog"):
                public_module = not any(p.startswith("_") for p in node.module.split("."))
                offending += [
                    f"{script.name}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if public_module and alias.name.startswith("_")
                ]
    assert offending == []


def test_the_benchmark_modules_stay_small() -> None:
    """The runner and the contenders stay under the project's 400 lines per module."""
    from mplog import _bench_contenders

    for module in (bench, _bench_contenders):
        assert module.__file__ is not None
        assert len(Path(module.__file__).read_text(encoding="utf-8").splitlines()) <= 400
