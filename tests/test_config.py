"""setup_logging(), config files and the pool worker initializer."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mplog
import mplog._cli
from helpers import BASE, DAY, read_log, size_named
from mplog._config import load_config


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Any:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_setup_logging_installs_the_handler_on_the_root_logger(tmp_path: Path) -> None:
    """Plain getLogger(__name__) calls end up in the file, formatted, at the given level."""
    path = tmp_path / "logs" / "app.log"
    handler = mplog.setup_logging(path, level="WARNING", format="%(levelname)s %(message)s")
    assert isinstance(handler, mplog.ConcurrentRotatingFileHandler)
    log = logging.getLogger("some.module")
    log.info("dropped")
    log.warning("kept %d", 1)
    assert _lines(path) == ["WARNING kept 1"]


def test_calling_setup_twice_never_duplicates_or_leaks(tmp_path: Path) -> None:
    """A second call replaces and closes the first handler: one copy of each record."""
    path = tmp_path / "app.log"
    first = mplog.setup_logging(path, format="%(message)s")
    second = mplog.setup_logging(path, format="%(message)s")
    assert first is not None
    assert second is not None
    assert first.stream is None, "the replaced handler was not closed"
    logging.getLogger("x").info("once")
    assert _lines(path) == ["once"]
    assert logging.getLogger().handlers == [second]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_repeated_setup_does_not_leak_file_descriptors(tmp_path: Path) -> None:
    """Calling setup_logging again and again keeps the number of open descriptors flat."""
    path = tmp_path / "app.log"
    mplog.setup_logging(path)
    logging.getLogger("x").info("warm up")  # opens the lock file too
    before = len(os.listdir("/proc/self/fd"))
    for i in range(20):
        mplog.setup_logging(path, batched=i % 2 == 0)
        logging.getLogger("x").info("call %d", i)
    assert len(os.listdir("/proc/self/fd")) == before


def test_human_sizes_and_durations(tmp_path: Path) -> None:
    """max_bytes and when accept '10 MB' and '1 day'; rotation defaults to 5 backups."""
    handler = mplog.setup_logging(tmp_path / "a.log", max_bytes="10 MB", when="1 day")
    assert handler is not None
    assert handler.maxBytes == 10_000_000
    assert handler.backupCount == mplog._config.DEFAULT_BACKUP_COUNT
    assert handler._schedule is not None
    assert (handler._schedule.when, handler._schedule.interval) == ("MIDNIGHT", 86400)
    hourly = mplog.setup_logging(tmp_path / "b.log", when="6 hours", backup_count=2)
    assert hourly is not None
    assert hourly._schedule is not None
    assert (hourly._schedule.when, hourly._schedule.interval, hourly.backupCount) == (
        "H",
        6 * 3600,
        2,
    )
    weekly = mplog.setup_logging(tmp_path / "c.log", when="W6", utc=True)
    assert weekly is not None
    assert weekly._schedule is not None
    assert (weekly._schedule.day_of_week, weekly._schedule.utc) == (6, True)


def test_size_rotation_through_setup_logging(tmp_path: Path) -> None:
    """Records beyond max_bytes go to backups named like the stdlib's."""
    path = tmp_path / "app.log"
    mplog.setup_logging(path, max_bytes=100, backup_count=3, format="%(message)s")
    for i in range(55):  # 10 bytes each: 10 records per file, 6 files' worth
        logging.getLogger("x").info("record %02d", i)
    assert sorted(p.name for p in tmp_path.glob("app.log*")) == [
        "app.log",
        "app.log.1",
        "app.log.2",
        "app.log.3",
    ]
    assert all(p.stat().st_size <= 100 for p in tmp_path.glob("app.log*"))
    assert _lines(path) == [f"record {i}" for i in range(50, 55)]
    assert _lines(tmp_path / "app.log.3")[0] == "record 20"


def test_setup_logging_wires_compression_and_retention(tmp_path: Path) -> None:
    """setup_logging(compress='gzip', max_age='7 days'): the handler compresses with gzip and
    retention deletes backups older than 7 days."""
    path = tmp_path / BASE
    handler = mplog.setup_logging(
        path, max_bytes=200, compress="gzip", compress_delay=0, max_age="7 days"
    )
    assert handler is not None
    assert handler._compressor is not None
    assert handler._compressor.name == "gzip"
    assert handler.backupCount == 5
    logger = logging.getLogger("mplog.tests.compression")
    for number in range(12):
        logger.info("message %03d", number)
    handler.close()
    files = size_named(tmp_path, ".gz")
    assert len(files) > 2
    text = "".join(read_log(f).decode("utf-8") for f in files)
    assert re.findall(r"message (\d{3})", text) == [f"{n:03d}" for n in range(12)]
    old = time.time() - 8 * DAY
    os.utime(files[0], (old, old))
    assert handler.getFilesToDelete() == [str(files[0])]


def test_console_adds_a_stderr_handler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """console=True also writes every record to standard error."""
    mplog.setup_logging(tmp_path / "a.log", console=True, format="%(message)s")
    logging.getLogger("x").info("both places")
    assert "both places" in capsys.readouterr().err
    assert _lines(tmp_path / "a.log") == ["both places"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"level": "LOUD"}, "level='LOUD'"),
        ({"max_bytes": "lots"}, "max_bytes='lots'"),
        ({"when": "3 fortnights"}, "when='3 fortnights'"),
        ({"when": "0 s"}, "when='0 s'"),
        ({"backup_count": -1, "max_bytes": 10}, "backupCount=-1"),
    ],
)
def test_bad_arguments_name_the_value(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    """Bad values raise ValueError naming the value, and leave logging as it was."""
    before = logging.getLogger().handlers[:]
    with pytest.raises(ValueError, match=r"expected|at least") as info:
        mplog.setup_logging(tmp_path / "a.log", **kwargs)
    assert fragment in str(info.value)
    assert logging.getLogger().handlers == before


def test_filename_or_config_is_required() -> None:
    """Without a filename or a config there is nothing to set up."""
    with pytest.raises(ValueError, match="filename"):
        mplog.setup_logging()


def test_bad_compress_fails_at_setup(tmp_path: Path) -> None:
    """An unknown compress= value is reported by setup_logging, naming it."""
    with pytest.raises(ValueError, match="compress='rar'"):
        mplog.setup_logging(tmp_path / "a.log", max_bytes="1 MB", compress="rar")


_CONFIG: dict[str, Any] = {
    "version": 1,
    "formatters": {"plain": {"format": "%(name)s %(message)s"}},
    "handlers": {
        "file": {
            "class": "mplog.ConcurrentRotatingFileHandler",
            "filename": "logs/app.log",
            "maxBytes": "1 KB",
            "backupCount": 2,
            "when": "midnight",
            "atTime": "00:00",
            "chmod": "0640",
            "lock_timeout": 5,
            "formatter": "plain",
        }
    },
    "root": {"level": "INFO", "handlers": ["file"]},
}


def _write_config(directory: Path, kind: str) -> Path:
    if kind == "json":
        path = directory / "logging.json"
        path.write_text(json.dumps(_CONFIG), encoding="utf-8")
    elif kind == "yaml":
        import yaml

        path = directory / "logging.yaml"
        path.write_text(yaml.safe_dump(_CONFIG), encoding="utf-8")
    else:
        path = directory / "logging.toml"
        handler = _CONFIG["handlers"]["file"]
        items = "\n".join(f"{key} = {json.dumps(value)}" for key, value in handler.items())
        path.write_text(
            "version = 1\n"
            '[formatters.plain]\nformat = "%(name)s %(message)s"\n'
            f"[handlers.file]\n{items}\n"
            '[root]\nlevel = "INFO"\nhandlers = ["file"]\n',
            encoding="utf-8",
        )
    return path


@pytest.mark.parametrize("kind", ["yaml", "json", "toml"])
def test_config_files_are_applied_with_relative_paths_resolved(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A YAML/JSON/TOML file configures every handler option; relative paths follow the file."""
    if kind == "toml" and sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    config = _write_config(config_dir, kind)
    monkeypatch.chdir(tmp_path)  # somewhere else: paths must resolve against the file
    handler = mplog.setup_logging(config=config)
    assert isinstance(handler, mplog.ConcurrentRotatingFileHandler)
    assert handler.baseFilename == str(config_dir / "logs" / "app.log")
    assert (handler.maxBytes, handler.backupCount) == (1000, 2)
    assert handler._schedule is not None
    assert handler._schedule.when == "MIDNIGHT"
    logging.getLogger("cfg").info("from %s", kind)
    log = config_dir / "logs" / "app.log"
    assert _lines(log) == [f"cfg from {kind}"]
    assert log.stat().st_mode & 0o777 == 0o640


def test_loggers_created_before_setup_keep_working(tmp_path: Path) -> None:
    """Module-level loggers made before a config is applied are not disabled."""
    early = logging.getLogger("created.at.import.time")
    config = dict(_CONFIG, handlers={"file": dict(_CONFIG["handlers"]["file"])})
    config["handlers"]["file"]["filename"] = str(tmp_path / "app.log")
    mplog.setup_logging(config=config)
    early.info("still here")
    assert _lines(tmp_path / "app.log") == ["created.at.import.time still here"]


def test_filenames_expand_variables_and_leave_ext_references_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$VARS in filenames are expanded; ext:// and cfg:// values are left to dictConfig."""
    monkeypatch.setenv("MPLOG_TEST_LOG_DIR", str(tmp_path / "from-env"))
    monkeypatch.setattr(sys.modules[__name__], "LOG_FILE", str(tmp_path / "ext.log"), raising=False)
    entry = _CONFIG["handlers"]["file"]
    config = dict(
        _CONFIG,
        handlers={
            "file": dict(entry, filename="$MPLOG_TEST_LOG_DIR/app.log"),
            "other": dict(entry, filename=f"ext://{__name__}.LOG_FILE"),
        },
        root={"level": "INFO", "handlers": ["file", "other"]},
    )
    settings = load_config(config)
    assert settings["handlers"]["file"]["filename"] == str(tmp_path / "from-env" / "app.log")
    assert settings["handlers"]["other"]["filename"] == f"ext://{__name__}.LOG_FILE"
    mplog.setup_logging(config=config)
    logging.getLogger("both").info("twice")
    assert _lines(tmp_path / "from-env" / "app.log") == ["both twice"]
    assert _lines(tmp_path / "ext.log") == ["both twice"]


def test_config_dict_is_not_modified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict config is copied; relative filenames resolve against the working directory."""
    monkeypatch.chdir(tmp_path)
    before = json.dumps(_CONFIG, sort_keys=True)
    mplog.setup_logging(config=_CONFIG)
    assert json.dumps(_CONFIG, sort_keys=True) == before
    assert (tmp_path / "logs" / "app.log").exists()


def test_bad_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    """A config whose handler option is invalid fails naming the file, handler and value."""
    config = dict(_CONFIG, handlers={"file": dict(_CONFIG["handlers"]["file"], when="often")})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json") as info:
        mplog.setup_logging(config=path)
    message = str(info.value)
    assert "'file'" in message
    assert "when='often'" in message


def test_unreadable_or_malformed_config_files(tmp_path: Path) -> None:
    """Missing files, syntax errors and unknown formats give errors naming the file."""
    with pytest.raises(OSError, match=r"missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_config(broken)
    odd = tmp_path / "logging.ini"
    odd.write_text("[loggers]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"logging.ini.*\.yaml, \.json or \.toml"):
        load_config(odd)
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_config(listy)


def test_missing_pyyaml_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PyYAML a YAML config raises ImportError naming pip install 'mplog[yaml]'."""
    path = _write_config(tmp_path, "yaml")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match=r"pip install 'mplog\[yaml\]'"):
        load_config(path)


def test_worker_initializer_needs_a_setup_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for an initializer before setup_logging() is a clear error."""
    monkeypatch.setattr(mplog._config, "_last_setup", None)
    with pytest.raises(RuntimeError, match="setup_logging"):
        mplog.worker_initializer()


def _pool_task(n: int) -> int:
    logging.getLogger("worker").info("task %d from %d", n, os.getpid())
    return os.getpid()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("use_config", [False, True])
def test_pool_workers_log_to_the_same_file(
    tmp_path: Path, method: str, use_config: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With any start method, one initializer line makes pool workers log to the same file."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "logs" / "app.log"
    if use_config:
        keep_all = dict(_CONFIG["handlers"]["file"], backupCount=100)
        mplog.setup_logging(config=dict(_CONFIG, handlers={"file": keep_all}))
    else:
        mplog.setup_logging(path, max_bytes="1 KB", backup_count=100, format="%(message)s")
    logging.getLogger("parent").info("parent before pool")
    ctx = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(
        2, mp_context=ctx, initializer=mplog.worker_initializer()
    ) as pool:
        pids = set(pool.map(_pool_task, range(40)))
    logging.getLogger().handlers[0].close()
    lines = [
        line
        for file in sorted(tmp_path.glob("logs/app.log*"))
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    tasks = sorted(int(line.split("task ")[1].split()[0]) for line in lines if "task " in line)
    assert tasks == list(range(40)), "every task logged exactly once"
    assert sum("parent before pool" in line for line in lines) == 1
    assert pids - {os.getpid()}, "the tasks ran in worker processes"


@pytest.mark.parametrize("when", ["midnite", "hourly", "1 fortnight"])
def test_when_errors_are_the_same_everywhere_and_list_both_forms(tmp_path: Path, when: str) -> None:
    """setup_logging(), both handlers and the CLI give one message for a bad when=: it lists
    the stdlib names and the durations, and suggests the name a typo was close to."""
    messages = []
    for make in (
        lambda: mplog.setup_logging(tmp_path / "a.log", when=when),
        lambda: mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", when=when),
        lambda: mplog.ConcurrentTimedRotatingFileHandler(tmp_path / "a.log", when),
    ):
        with pytest.raises(ValueError, match=re.escape(f"when={when!r}")) as info:
            make()
        messages.append(str(info.value))
    assert messages[0] == messages[1] == messages[2]
    for form in ("'midnight'", "'H'", "'W0'-'W6'", "'1 day'", "'6 hours'", "timedelta"):
        assert form in messages[0]
    assert ("did you mean 'midnight'?" in messages[0]) == (when == "midnite")
    with pytest.raises(SystemExit):
        mplog._cli.main(["demo", "--when", when])
    assert not (tmp_path / "a.log").exists()


def test_handlers_accept_durations_like_setup_logging(tmp_path: Path) -> None:
    """when='1 day' or '6 hours' works in the handlers (and so in dictConfig files) too."""
    daily = mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", when="1 day", delay=True)
    hourly = mplog.ConcurrentTimedRotatingFileHandler(tmp_path / "b.log", "6 hours", delay=True)
    stdlib = mplog.ConcurrentTimedRotatingFileHandler(tmp_path / "c.log", "H", 6, delay=True)
    schedules = [h._schedule for h in (daily, hourly, stdlib)]
    assert [(s.when, s.interval) for s in schedules if s] == [
        ("MIDNIGHT", 86400),
        ("H", 6 * 3600),
        ("H", 6 * 3600),
    ]
    for handler in (daily, hourly, stdlib):
        handler.close()
    file = {"class": "mplog.ConcurrentRotatingFileHandler", "filename": str(tmp_path / "d.log")}
    configured = mplog.setup_logging(
        config={
            "version": 1,
            "handlers": {"f": dict(file, when="6 hours")},
            "root": {"handlers": ["f"]},
        }
    )
    assert configured is not None
    assert configured._schedule is not None
    assert (configured._schedule.when, configured._schedule.interval) == ("H", 6 * 3600)


def test_interval_with_a_duration_is_refused(tmp_path: Path) -> None:
    """when='6 hours', interval=2 is ambiguous: the error says to put the period in when=."""
    with pytest.raises(ValueError, match=r"when='6 hours', interval=2: .*give the whole period"):
        mplog.setup_logging(tmp_path / "a.log", when="6 hours", interval=2)


_YAML = """\
version: 1
formatters:
  plain:
    format: "%(levelname)s %(name)s: %(message)s"
filters:
  only_app:
    name: app
handlers:
  file:
    class: mplog.ConcurrentRotatingFileHandler
    filename: logs/app.log
    maxBytes: 10 KB
    backupCount: 2
    formatter: plain
loggers:
  app:
    level: DEBUG
    propagate: true
root:
  level: INFO
  handlers: [file]
"""


@pytest.mark.parametrize(
    ("typo", "fixed", "path", "suggestion"),
    [
        ("\nroot:", "\nroots:", "roots", "'root'"),
        ("  level: INFO", "  levle: INFO", "root.levle", "'level'"),
        ("  handlers: [file]", "  handler: [file]", "root.handler", "'handlers'"),
        ("    propagate:", "    propagte:", "loggers.app.propagte", "'propagate'"),
        ("    maxBytes:", "    max_bytes:", "handlers.file.max_bytes", "'maxBytes'"),
        ("    backupCount:", "    backupCont:", "handlers.file.backupCont", "'backupCount'"),
        ("    formatter: plain", "    formater: plain", "handlers.file.formater", "'formatter'"),
        ("    format:", "    fromat:", "formatters.plain.fromat", "'format'"),
        ("    name: app", "    nmae: app", "filters.only_app.nmae", "'name'"),
        ("  level: INFO", "  level: INOF", "root.level", "'INFO'"),
        ("  handlers: [file]", "  handlers: [fiel]", "root.handlers", "'file'"),
        ("    formatter: plain", "    formatter: plane", "handlers.file.formatter", "'plain'"),
    ],
)
def test_config_typos_fail_naming_the_file_the_key_path_and_the_fix(
    tmp_path: Path, typo: str, fixed: str, path: str, suggestion: str
) -> None:
    """A misspelled key, level or name in a config file is refused before anything is set
    up (stdlib dictConfig ignores unknown keys), with a 'did you mean'."""
    pytest.importorskip("yaml")
    assert _YAML.count(typo) == 1
    config = tmp_path / "logging.yaml"
    config.write_text(_YAML.replace(typo, fixed), encoding="utf-8")
    before = logging.getLogger().handlers[:]
    with pytest.raises(ValueError, match=rf"did you mean {re.escape(suggestion)}\?") as info:
        mplog.setup_logging(config=config)
    assert str(info.value).startswith(f"{config}: {path}: ")
    assert logging.getLogger().handlers == before
    assert not (tmp_path / "logs").exists(), "nothing is created for a config that is refused"


def test_the_untouched_config_applies(tmp_path: Path) -> None:
    """The config the typo test breaks is valid as written: each failure there is the typo's."""
    pytest.importorskip("yaml")
    config = tmp_path / "logging.yaml"
    config.write_text(_YAML, encoding="utf-8")
    handler = mplog.setup_logging(config=config)
    assert handler is not None
    assert (handler.maxBytes, handler.backupCount) == (10_000, 2)
    logging.getLogger("app").debug("in")
    assert _lines(tmp_path / "logs" / "app.log") == ["DEBUG app: in"]


def test_handler_keys_are_checked_against_the_class_signature(tmp_path: Path) -> None:
    """A stdlib class's keys are its constructor's keywords; factories ('()') and classes
    that take **kwargs are left to dictConfig."""
    stream = {"class": "logging.StreamHandler", "filename": str(tmp_path / "a.log")}
    config = {"version": 1, "handlers": {"out": stream}}
    with pytest.raises(ValueError, match=r"^config: handlers\.out\.filename: unknown key") as info:
        mplog.setup_logging(config=config)
    assert "logging.StreamHandler" in str(info.value)
    factory = {"()": "logging.Formatter", "fmt": "%(message)s"}  # any keyword, as dictConfig
    config = {"version": 1, "formatters": {"f": factory}, "handlers": {}}
    assert mplog.setup_logging(config=config) is None


def test_dict_config_errors_name_the_file_and_key_path(tmp_path: Path) -> None:
    """What dictConfig itself refuses (a class that does not import) is re-raised with the
    file name and the key path of the entry."""
    pytest.importorskip("yaml")
    config = tmp_path / "logging.yaml"
    text = _YAML.replace("mplog.ConcurrentRotatingFileHandler", "mplog.NoSuchHandler")
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"NoSuchHandler") as info:
        mplog.setup_logging(config=config)
    assert str(info.value).startswith(f"{config}: handlers.file: Unable to configure handler")


@pytest.mark.parametrize(
    ("kwargs", "max_bytes", "backup_count"),
    [
        ({"maxBytes": "2 KB"}, 2000, mplog._config.DEFAULT_BACKUP_COUNT),
        ({"max_bytes": "2 KB"}, 2000, mplog._config.DEFAULT_BACKUP_COUNT),
        ({"maxBytes": "2 KB", "backupCount": 3}, 2000, 3),
        ({"max_bytes": "2 KB", "backupCount": 3}, 2000, 3),
    ],
)
def test_the_handlers_camel_case_spellings_are_aliases(
    tmp_path: Path, kwargs: dict[str, Any], max_bytes: int, backup_count: int
) -> None:
    """setup_logging(maxBytes=...) rotates like max_bytes=..., with the same default
    backup count (it used to reach the handler with backupCount 0: no rotation)."""
    path = tmp_path / "app.log"
    handler = mplog.setup_logging(path, format="%(message)s", **kwargs)
    assert handler is not None
    assert (handler.maxBytes, handler.backupCount) == (max_bytes, backup_count)
    for i in range(300):
        logging.getLogger("x").info("record %04d", i)  # 12 bytes each: 3,600 bytes
    assert (tmp_path / "app.log.1").exists(), "it rotated"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_bytes": 10, "maxBytes": 20}, "max_bytes=10 and maxBytes=20"),
        ({"backup_count": 1, "backupCount": 2}, "backup_count=1 and backupCount=2"),
    ],
)
def test_both_spellings_of_one_option_are_refused(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    """Giving both spellings of one option fails instead of silently using one of them."""
    with pytest.raises(ValueError, match="are the same option; give only one") as info:
        mplog.setup_logging(tmp_path / "a.log", **kwargs)
    assert fragment in str(info.value)
    assert not (tmp_path / "a.log").exists()


@pytest.mark.parametrize(
    ("keyword", "meant"),
    [("max_byte", "max_bytes"), ("maxbytes", "maxBytes"), ("lock_timout", "lock_timeout")],
)
def test_unknown_keywords_name_the_option_meant(tmp_path: Path, keyword: str, meant: str) -> None:
    """A misspelled keyword of setup_logging() fails with the option that was meant."""
    with pytest.raises(ValueError, match=rf"setup_logging\(\): {keyword}: unknown keyword") as info:
        mplog.setup_logging(tmp_path / "a.log", **{keyword: 1})
    assert str(info.value).endswith(f"did you mean {meant!r}?")
    assert not (tmp_path / "a.log").exists()
