"""What a new user trips over first: each test reproduces one mistake from the outside
(a call, a config file, a command line) and shows what mplog now says or does."""

from __future__ import annotations

import ast
import inspect
import logging
import logging.config
import os
import pydoc
import re
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

import mplog

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


# -- import cost and dependencies ----------------------------------------------------------------


def test_import_mplog_loads_only_the_package() -> None:
    """`import mplog` imports none of its modules (nor importlib.metadata, nor
    logging.config) until a name is used; then everything works as before."""
    code = """
    import sys
    before = set(sys.modules)
    import mplog
    print(sorted(set(sys.modules) - before))
    from mplog import ConcurrentRotatingFileHandler, setup_logging
    print(mplog.__version__ != "", "mplog.handler" in sys.modules)
    """
    result = _run(code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    loaded = ast.literal_eval(first)
    assert [name for name in loaded if name.startswith("mplog")] == ["mplog"]
    assert "importlib.metadata" not in loaded
    assert "logging.config" not in loaded
    assert second == "True True"


def test_portalocker_is_needed_on_windows_only(tmp_path: Path) -> None:
    """The dependency is declared for Windows only, and on POSIX mplog logs, rotates and
    compresses with portalocker made unimportable."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "\"portalocker>=2.7; sys_platform == 'win32'\"" in pyproject
    if os.name == "nt":  # pragma: no cover
        return
    code = """
    import logging, sys
    sys.modules["portalocker"] = None
    import mplog
    handler = mplog.ConcurrentRotatingFileHandler(
        sys.argv[1], maxBytes=100, backupCount=3, compress="gzip", compress_delay=0
    )
    for i in range(20):
        handler.emit(logging.makeLogRecord({"msg": "record %02d %s" % (i, "x" * 40)}))
    handler.close()
    """
    result = _run(code, str(tmp_path / "app.log"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".gz")) == [
        "app.log.1.gz",
        "app.log.2.gz",
        "app.log.3.gz",
    ]


