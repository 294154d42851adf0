"""Every code block in README.md runs, and does what the README says."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mplog

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _run(code: str, cwd: Path) -> None:
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_readme_has_the_blocks_this_file_checks() -> None:
    """The README still has the quickstart, the worker example, compression, the YAML and
    the imports."""
    assert len(_blocks("python")) == 5
    assert len(_blocks("yaml")) == 1


def test_quickstart(tmp_path: Path) -> None:
    """The quickstart logs 'ready' into logs/app.log, creating the directory."""
    _run(_blocks("python")[0], tmp_path)
    lines = (tmp_path / "logs" / "app.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("INFO __main__: ready")


@pytest.mark.timeout(120)
def test_worker_example_logs_every_task_once(tmp_path: Path) -> None:
    """The spawn pool example logs each of its 100 tasks exactly once into one file."""
    _run(_blocks("python")[1], tmp_path)
    text = (tmp_path / "logs" / "app.log").read_text(encoding="utf-8")
    tasks = sorted(int(m) for m in re.findall(r"INFO worker: task (\d+)$", text, re.MULTILINE))
    assert tasks == list(range(100))


def test_yaml_example(tmp_path: Path) -> None:
    """The YAML block configures size and time rotation and logs next to the file."""
    pytest.importorskip("yaml")
    config = tmp_path / "conf" / "logging.yaml"
    config.parent.mkdir()
    config.write_text(_blocks("yaml")[0], encoding="utf-8")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        handler = mplog.setup_logging(config=config)
        assert handler is not None
        assert (handler.maxBytes, handler.backupCount) == (10_000_000, 5)
        assert handler._schedule is not None
        assert handler._schedule.when == "MIDNIGHT"
        logging.getLogger("readme").info("configured")
        handler.close()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    text = (tmp_path / "conf" / "logs" / "app.log").read_text(encoding="utf-8")
    assert text.rstrip().endswith("INFO readme: configured")


def test_compression_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compression block builds a gzip handler with all three retention rules."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        exec(_blocks("python")[2], namespace)
    finally:
        root.handlers[:] = saved
    handler = namespace["handler"]
    assert isinstance(handler, mplog.ConcurrentRotatingFileHandler)
    handler.close()
    assert handler._compressor is not None
    assert handler._compressor.name == "gzip"
    assert (handler.maxBytes, handler.backupCount) == (10_000_000, 20)
    assert handler._backups.retention.max_age == 14 * 86400
    assert handler._backups.retention.max_total_size == 500_000_000
    assert (tmp_path / "logs" / "app.log").exists()


def test_the_logrotate_stanza_is_the_example_file() -> None:
    """The README shows examples/logrotate.conf as it is (tests/test_faults.py runs that
    file with the real logrotate)."""
    example = (ROOT / "examples" / "logrotate.conf").read_text(encoding="utf-8")
    assert _blocks("conf") == [example]


@pytest.mark.parametrize("index", [3, 4])
def test_migration_imports(tmp_path: Path, index: int) -> None:
    """The one-line migration imports work."""
    _run(_blocks("python")[index], tmp_path)


def test_ci_runs_the_readme_commands() -> None:
    """.ci/run runs the README's demo and test commands, so the README stays true."""
    commands = re.findall(r"&& (python -m [^\n#]+?)\s*(?:#|\n)", "\n".join(_blocks("bash")))
    assert "python -m mplog demo" in commands
    assert "python -m pytest" in commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in commands:
        assert command in ci


def test_config_error_shown_in_the_readme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example error is what setup_logging says for `levle:` in its YAML."""
    pytest.importorskip("yaml")
    (shown,) = _blocks("text")
    yaml_block = _blocks("yaml")[0]
    assert yaml_block.count("  level: INFO") == 1
    monkeypatch.chdir(tmp_path)
    Path("logging.yaml").write_text(yaml_block.replace("  level:", "  levle:"), encoding="utf-8")
    with pytest.raises(ValueError, match="levle") as info:
        mplog.setup_logging(config="logging.yaml")
    assert str(info.value) == shown.strip()


def _section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", README, flags=re.DOTALL | re.MULTILINE)
    assert match, f"no section {title!r}"
    return match.group(1)


def test_install_works_from_a_clone_before_the_first_release() -> None:
    """The Install section installs from the checkout (mplog is not released yet), and every
    extra it names exists in pyproject.toml."""
    install = _section("Install")
    commands = [line.split("#")[0].split() for line in install.splitlines()]
    commands = [c for c in commands if c[:3] == ["python", "-m", "pip"]]
    assert commands, "no install command"
    assert all(c[-1] == "." or c[-1].startswith("'.[") for c in commands), commands
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.optional-dependencies]\n")[1].split("\n[")[0]
    extras = set(re.findall(r"^(\w+) = \[", section, re.MULTILINE))
    assert {"yaml", "zstd", "test", "dev"} <= extras
    for extra in re.findall(r"'\.\[(\w+)\]'", install):
        assert extra in extras, f"no extra {extra!r} in pyproject.toml"


def test_the_release_steps_exist() -> None:
    """RELEASING.md, which the README points to, builds, checks with twine and tags."""
    assert "RELEASING.md" in _section("Development")
    steps = (ROOT / "RELEASING.md").read_text(encoding="utf-8")
    for step in ("python -m build", "twine check", "git tag", "CHANGELOG.md", "pyproject.toml"):
        assert step in steps


def test_setup_loggings_own_keywords_are_documented() -> None:
    """Every keyword of setup_logging() itself (the rest go to the handler) has a row in
    the Quickstart's table."""
    import inspect

    rows = [line.split("|")[1] for line in _section("Quickstart").splitlines() if line[:1] == "|"]
    documented = {name for cell in rows for name in re.findall(r"`(\w+)`", cell)}
    own = set(inspect.signature(mplog.setup_logging).parameters) - {"handler_options"}
    assert own <= documented, own - documented


def test_the_compression_snippet_says_when_backups_get_compressed() -> None:
    """The snippet that shows app.log.1.gz says, on that line, that a backup is compressed
    once compress_delay old, so a short script shows plain backups."""
    (line,) = [line for line in _blocks("python")[2].splitlines() if "app.log.1.gz" in line]
    assert "compress_delay" in line
