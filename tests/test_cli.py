"""The ``mplog demo`` command: a verified multi-process run."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mplog._cli import main
from mplog._demo import LOG_NAME, _line, verify_log


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_demo_verifies_every_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    """The demo logs from several processes with rotation and finds every record once."""
    status = main(
        [
            "demo",
            "-p",
            "3",
            "-n",
            "400",
            "--max-bytes",
            "4KiB",
            "--start-method",
            method,
            "--dir",
            str(tmp_path),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, out
    assert "written       : 1,200 of 1,200" in out
    assert "lost          : 0" in out
    assert "OK, every record exactly once" in out
    assert f"logs          : {tmp_path} (kept)" in out
    assert "1,200/1,200 records" in err  # the progress display
    backups = [p for p in tmp_path.iterdir() if p.name.startswith(f"{LOG_NAME}.")]
    assert backups, "the small --max-bytes made it rotate"
    assert all(p.stat().st_size <= 4096 for p in backups)


@pytest.mark.timeout(120)
def test_demo_with_compression_reads_every_record_back_from_the_archives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compress gzip: every backup ends up compressed and the check decompresses them."""
    argv = ["demo", "-p", "3", "-n", "400", "--max-bytes", "4KiB", "--compress", "gzip"]
    status = main([*argv, "-q", "--dir", str(tmp_path)])
    out, _ = capsys.readouterr()
    assert status == 0, out
    assert "written       : 1,200 of 1,200" in out
    backups = [p.name for p in tmp_path.iterdir() if p.name.startswith(f"{LOG_NAME}.")]
    assert backups, "the small --max-bytes made it rotate"
    assert all(name.endswith(".gz") for name in backups), backups
    assert f"({len(backups)} rotations, {len(backups)} compressed)" in out


def test_verify_finds_records_lost_inside_a_compressed_backup(tmp_path: Path) -> None:
    """A compressed backup is read like a plain one: a record missing from it counts."""
    lines = [_line(0, seq, "payload") for seq in range(4)]
    (tmp_path / f"{LOG_NAME}.1.gz").write_bytes(
        gzip.compress("".join(line + "\n" for line in lines[:1]).encode())
    )
    _write(tmp_path, lines[2:])
    report = verify_log(str(tmp_path), processes=1, records=4)
    assert (report.found, report.lost, report.compressed) == (3, 1, 1)
    assert not report.ok


def _write(directory: Path, lines: list[str]) -> None:
    (directory / LOG_NAME).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_verify_counts_lost_duplicated_torn_and_reordered(tmp_path: Path) -> None:
    """The checker notices every kind of damage it reports."""
    good = [_line(0, seq, "payload") for seq in range(5)]
    torn = good[3][: len(good[3]) // 2]
    _write(tmp_path, [good[0], good[2], good[1], good[1], torn, "garbage"])
    report = verify_log(str(tmp_path), processes=1, records=5)
    assert (report.found, report.lost, report.duplicated) == (3, 2, 1)
    assert report.torn == 2
    assert report.out_of_order == 1
    assert not report.ok


def test_demo_exits_1_when_records_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose files miss records makes the command fail."""
    import mplog._demo

    real = mplog._demo.verify_log

    def lose_one(directory: str, processes: int, records: int, max_bytes: int = 0):  # type: ignore[no-untyped-def]
        _write(Path(directory), [_line(0, seq, "p") for seq in range(records - 1)])
        return real(directory, 1, records, 0)

    monkeypatch.setattr(mplog._demo, "verify_log", lose_one)
    status = main(["demo", "-p", "1", "-n", "10", "-q", "--dir", str(tmp_path)])
    assert status == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["demo", "-p", "0"], "'0' must be at least 1"),
        (["demo", "-n", "many"], "'many' is not a whole number"),
        (["demo", "--max-bytes", "10XB"], "--max-bytes='10XB'"),
        (["demo", "--when", "sometimes"], "when='sometimes'"),
        (["demo", "--start-method", "teleport"], "invalid choice: 'teleport'"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_options_exit_2_naming_the_value(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse errors name the bad value and exit with status 2."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert fragment in capsys.readouterr().err


def test_python_dash_m_and_help() -> None:
    """python -m mplog --help describes the commands."""
    result = subprocess.run(
        [sys.executable, "-m", "mplog", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "--processes" in result.stdout
    assert "--start-method" in result.stdout


def test_version_comes_from_the_package_metadata() -> None:
    """mplog --version and mplog.__version__ both report the installed distribution's version."""
    import importlib.metadata

    import mplog

    installed = importlib.metadata.version("mplog")
    assert mplog.__version__ == installed
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8")
    assert f'\nversion = "{installed}"\n' in pyproject  # the one place it is written
    result = subprocess.run(
        [sys.executable, "-m", "mplog", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == f"mplog {installed}"


_WITHOUT_ZSTD = """\
import sys
sys.modules["zstandard"] = None  # as if the zstd extra were not installed
sys.modules["compression.zstd"] = None  # and Python older than 3.14
from mplog._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_demo_compress_zstd_without_the_extra_is_one_line_before_any_worker(
    tmp_path: Path,
) -> None:
    """--compress zstd without zstandard: a usage error naming the extra, checked in the
    parent (no worker tracebacks, no log written)."""
    directory = tmp_path / "logs"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _WITHOUT_ZSTD,
            "demo",
            "--compress",
            "zstd",
            "--dir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error.startswith("mplog demo: error: --compress zstd: ")
    assert result.stderr.startswith("usage: mplog demo ")  # the subcommand's usage
    assert error.endswith("pip install 'mplog[zstd]'")
    assert result.stdout == ""
    assert not directory.exists()


def test_demo_help_says_which_choices_need_an_extra() -> None:
    """demo --help says that zstd needs Python 3.14 or the zstd extra."""
    result = subprocess.run(
        [sys.executable, "-m", "mplog", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "zstd needs Python 3.14 or the zstd extra: pip install 'mplog[zstd]'" in result.stdout


@pytest.mark.parametrize("where", ["under a file", "/proc/nope"])
def test_demo_dir_that_cannot_be_created_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """--dir where no directory can be made: exit status 2 and one line naming it."""
    if where == "under a file":
        (tmp_path / "file").write_text("")
        where = str(tmp_path / "file" / "logs")
    elif not os.path.isdir("/proc/self"):
        where = str(tmp_path / "file-for-proc")  # no /proc: still a path under a file
        Path(where).write_text("")
        where += "/nope"
    with pytest.raises(SystemExit) as info:
        main(["demo", "-q", "--dir", where])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"mplog demo: error: --dir {where!r}: cannot create it: " in err
    assert err.startswith("usage: mplog demo ")
    assert "Traceback" not in err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("keep", [False, True])
def test_demo_says_where_its_logs_are_and_whether_it_kept_them(
    capsys: pytest.CaptureFixture[str], keep: bool
) -> None:
    """Without --dir the demo removes its temporary directory after a good run unless
    --keep, and says which; it explains the oversized count."""
    status = main(["demo", "-p", "2", "-n", "200", "-q", *(["--keep"] if keep else [])])
    out = capsys.readouterr().out
    assert status == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("logs          : ")]
    directory = line.split(": ", 1)[1].split(" (")[0]
    assert os.path.basename(directory).startswith("mplog-demo-")
    assert "oversized     : 0 (backups larger than --max-bytes 65,536)" in out
    if keep:
        assert line.endswith("(kept: --keep)")
        assert os.path.isfile(os.path.join(directory, LOG_NAME))
        shutil.rmtree(directory)
    else:
        assert line.endswith("(a temporary directory, removed; --keep keeps it)")
        assert not os.path.exists(directory)
