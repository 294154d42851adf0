"""The public API is what README's *Public API* lists, and every other module is private."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import mplog

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Modules a user may import by name: the package, ``python -m mplog``, the exceptions
# (structlog and others keep theirs public too), and the old home of the handler
# classes, which configuration files written for earlier versions name.
PUBLIC_MODULES = {"__main__", "exceptions", "handler"}


def _public_api_section() -> str:
    match = re.search(r"^## Public API\n(.*?)^## ", README, re.M | re.S)
    assert match, "README has no '## Public API' section"
    return match[1]


def test_every_module_but_the_public_ones_is_private() -> None:
    names = {info.name for info in pkgutil.iter_modules(mplog.__path__)}
    public = {name for name in names if not name.startswith("_")}
    assert public == PUBLIC_MODULES - {"__main__"}
    assert "__main__" in names


def test_readme_lists_exactly_the_names_mplog_exports() -> None:
    names_part = _public_api_section().split("On a handler")[0]
    listed = set(re.findall(r"`mplog\.(\w+)`", names_part)) - PUBLIC_MODULES
    assert listed == set(mplog.__all__) | {"__version__"}
    for name in listed:
        assert getattr(mplog, name) is not None


def test_every_exported_name_resolves_and_dir_shows_it() -> None:
    for name in mplog.__all__:
        value = getattr(mplog, name)
        assert value is not None
        assert name in dir(mplog)


def test_the_exceptions_and_handlers_are_the_same_objects_from_their_public_modules() -> None:
    import mplog.exceptions
    import mplog.handler

    for name in ("MplogError", "LockTimeout", "LockFileConflict", "QueueFull", "ReentrantLogging"):
        assert getattr(mplog.exceptions, name) is getattr(mplog, name)
    for name in ("ConcurrentRotatingFileHandler", "ConcurrentTimedRotatingFileHandler"):
        assert getattr(mplog.handler, name) is getattr(mplog, name)


def test_a_config_naming_the_old_module_path_still_builds_the_handler(tmp_path: Path) -> None:
    import logging.config

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "file": {
                    "class": "mplog.handler.ConcurrentRotatingFileHandler",
                    "filename": str(tmp_path / "app.log"),
                }
            },
            "loggers": {"public_api_test": {"handlers": ["file"], "level": "INFO"}},
        }
    )
    logger = logging.getLogger("public_api_test")
    try:
        logger.info("one")
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    assert (tmp_path / "app.log").read_text() == "one\n"


def test_the_listed_command_line_entry_points_exist() -> None:
    section = _public_api_section()
    commands = set(re.findall(r"`mplog (\w+)`", section))
    assert {"demo", "bench"} <= commands
    for command in sorted(commands):
        result = subprocess.run(
            [sys.executable, "-m", "mplog", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_private_modules_import_on_their_own() -> None:
    for info in pkgutil.iter_modules(mplog.__path__):
        if info.name.startswith("_") and info.name != "__main__":
            importlib.import_module(f"mplog.{info.name}")
