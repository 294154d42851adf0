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


# -- a config file given as the log -------------------------------------------------------

CONFIG = """\
version: 1
handlers:
  file:
    class: mplog.ConcurrentRotatingFileHandler
    filename: app.log
root:
  level: INFO
  handlers: [file]
"""


def test_a_config_file_given_as_the_log_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setup_logging("logging.yaml") (config= forgotten) fails naming the fix; the config
    file is not appended to and no lock file appears, so setup_logging(config=...) works."""
    pytest.importorskip("yaml")
    monkeypatch.chdir(tmp_path)
    Path("logging.yaml").write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ValueError, match="named like a configuration file") as info:
        mplog.setup_logging("logging.yaml")
    assert "mplog.setup_logging(config='logging.yaml')" in str(info.value)
    assert Path("logging.yaml").read_text(encoding="utf-8") == CONFIG
    assert sorted(os.listdir(".")) == ["logging.yaml"]
    handler = mplog.setup_logging(config="logging.yaml")
    assert handler is not None
    handler.close()


@pytest.mark.parametrize(
    "name", ["settings.json", "app.YML", "log.toml", "logging.ini", "setup.cfg", "app.conf"]
)
def test_config_like_names_are_refused_by_the_handler_too(tmp_path: Path, name: str) -> None:
    """The handler itself (so dictConfig and fileConfig too) refuses a log named like a
    config file, before creating anything."""
    with pytest.raises(
        ValueError, match=re.escape(f"setup_logging(config={str(tmp_path / name)!r})")
    ):
        mplog.ConcurrentRotatingFileHandler(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_logs_of_json_lines_have_their_own_names(tmp_path: Path) -> None:
    """.jsonl and .ndjson (and .log, of course) are logs."""
    for name in ("events.jsonl", "events.ndjson", "app.log", "app.log.json.d"):
        mplog.ConcurrentRotatingFileHandler(tmp_path / name).close()
        assert (tmp_path / name).is_file()


# -- chmod and umask ------------------------------------------------------------------------


@pytest.mark.parametrize("chmod", [0o640, "0640", "640", "0o640", "u=rw,g=r", "u=rw,g=r,o="])
def test_every_spelling_of_mode_0640_makes_0640_files(tmp_path: Path, chmod: Any) -> None:
    """Octal ints, octal strings and symbolic modes all mean 0o640."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", chmod=chmod)
    handler.close()
    for name in ("app.log", ".__app.lock"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


@pytest.mark.parametrize(("option", "value"), [("chmod", 640), ("chmod", 644), ("umask", 256)])
def test_a_decimal_mode_is_refused_with_the_octal_spelling(
    tmp_path: Path, option: str, value: int
) -> None:
    """chmod=640 is the decimal 640 (0o1200: the owner could not read its log): refused,
    naming the value and the spelling that was meant; nothing is created."""
    with pytest.raises(ValueError, match=rf"{option}={value} is the decimal number") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", **{option: value})
    assert f"{option}=0o{value} in Python" in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("chmod", [0o1640, "1640", 0o040, "u=,g=rw", "u+rw", "rw-r-----x"])
def test_modes_that_make_no_sense_for_a_log_are_refused(tmp_path: Path, chmod: Any) -> None:
    """Bits beyond 0o777, a mode the owner cannot read, and unknown forms are refused."""
    with pytest.raises(ValueError, match=re.escape(f"chmod={chmod!r}")):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", chmod=chmod)


def test_yaml_modes_work_as_written_or_fail_clearly(tmp_path: Path) -> None:
    """In YAML, `chmod: 0640` (YAML 1.1 octal) and `chmod: "640"` work; `chmod: 640`
    fails naming the file, the key and both fixes."""
    pytest.importorskip("yaml")
    for i, spelling in enumerate(["0640", '"640"', '"u=rw,g=r"']):
        config = tmp_path / f"ok{i}.yaml"
        config.write_text(
            CONFIG.replace("filename: app.log", f"filename: app{i}.log\n    chmod: {spelling}"),
            encoding="utf-8",
        )
        handler = mplog.setup_logging(config=config)
        assert handler is not None
        handler.close()
        assert stat.S_IMODE((tmp_path / f"app{i}.log").stat().st_mode) == 0o640, spelling
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        CONFIG.replace("filename: app.log", "filename: bad.log\n    chmod: 640"), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"handlers\.file") as info:
        mplog.setup_logging(config=bad)
    message = str(info.value)
    assert "chmod=640 is the decimal number 640" in message
    assert "chmod: '640'" in message
    assert "0640" in message
    assert not (tmp_path / "bad.log").exists()


# -- misspelled options on every path --------------------------------------------------------


def test_a_misspelled_option_names_the_option_meant_when_built_directly(tmp_path: Path) -> None:
    """ConcurrentRotatingFileHandler("a.log", compres="gzip") says "did you mean
    'compress'?" (a TypeError, as Python's own), for both classes."""
    with pytest.raises(TypeError, match=r"'compres'; did you mean 'compress'\?"):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "a.log", compres="gzip")
    with pytest.raises(TypeError, match=r"'maxbytes'; did you mean 'maxBytes'\?"):
        mplog.ConcurrentTimedRotatingFileHandler(tmp_path / "a.log", maxbytes=10)
    assert os.listdir(tmp_path) == []


def test_a_misspelled_option_names_the_option_meant_through_dict_config(tmp_path: Path) -> None:
    """Bare logging.config.dictConfig: its 'Unable to configure handler' error carries the
    suggestion as its cause."""
    config = {
        "version": 1,
        "handlers": {
            "f": {
                "class": "mplog.ConcurrentRotatingFileHandler",
                "filename": str(tmp_path / "a.log"),
                "compres": "gzip",
            }
        },
    }
    with pytest.raises(ValueError, match="Unable to configure handler 'f'") as info:
        logging.config.dictConfig(config)
    assert "did you mean 'compress'?" in str(info.value.__cause__)


def test_a_misspelled_option_names_the_option_meant_through_file_config(tmp_path: Path) -> None:
    """logging.config.fileConfig with kwargs= gets the suggestion too."""
    ini = tmp_path / "logging.ini"
    ini.write_text(
        textwrap.dedent(
            f"""\
            [loggers]
            keys=root
            [handlers]
            keys=f
            [formatters]
            keys=
            [logger_root]
            handlers=f
            [handler_f]
            class=mplog.ConcurrentRotatingFileHandler
            args=({str(tmp_path / "a.log")!r},)
            kwargs={{"backupcount": 3}}
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(TypeError, match=r"did you mean 'backupCount'\?"):
        logging.config.fileConfig(ini)


def test_the_handlers_signature_is_still_their_documented_one() -> None:
    """inspect.signature and help() show __init__'s parameters, not (*args, **kwargs)."""
    for cls in (mplog.ConcurrentRotatingFileHandler, mplog.ConcurrentTimedRotatingFileHandler):
        parameters = inspect.signature(cls).parameters
        assert list(parameters)[:2] in (["filename", "mode"], ["filename", "when"])
        assert "args" not in parameters
    assert "compress_delay" in inspect.signature(mplog.ConcurrentRotatingFileHandler).parameters
    text = pydoc.render_doc(mplog.ConcurrentRotatingFileHandler, renderer=pydoc.plaintext)
    # (3.13 spreads a long signature over several lines)
    assert "ConcurrentRotatingFileHandler(filename" in re.sub(r"[\s|]+", "", text)


def test_a_subclass_keeps_its_own_keywords(tmp_path: Path) -> None:
    """A subclass whose __init__ takes keywords of its own through **kwargs is not judged
    by mplog's list; one without an __init__ gets the suggestion."""

    class Tagged(mplog.ConcurrentRotatingFileHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.tag = kwargs.pop("tag")
            super().__init__(*args, **kwargs)

    class Plain(mplog.ConcurrentRotatingFileHandler):
        pass

    handler = Tagged(tmp_path / "a.log", tag="x", backupCount=2)
    handler.close()
    assert (handler.tag, handler.backupCount) == ("x", 2)
    with pytest.raises(TypeError, match=r"Plain\(\) got an unexpected keyword argument 'tag'"):
        Plain(tmp_path / "b.log", tag="x")


# -- value forms that work everywhere ---------------------------------------------------------


def test_level_names_work_in_any_case(tmp_path: Path) -> None:
    """setup_logging(level="info") works, as in config files."""
    handler = mplog.setup_logging(tmp_path / "app.log", level="info")
    assert handler is not None
    assert logging.getLogger().level == logging.INFO
    handler.close()


@pytest.mark.parametrize(("given", "seconds"), [("5 s", 5.0), ("1 min", 60.0), (2, 2.0)])
def test_lock_timeout_takes_durations_like_every_duration(
    tmp_path: Path, given: Any, seconds: float
) -> None:
    """lock_timeout="5 s" works (it raised a TypeError from a comparison)."""
    handler = mplog.setup_logging(tmp_path / "app.log", lock_timeout=given)
    assert handler is not None
    handler.close()
    assert handler._options.lock_timeout == seconds


@pytest.mark.parametrize("max_bytes", [10.5, "10.5", "1.0001 KB"])
def test_a_fractional_size_is_refused_not_rounded(tmp_path: Path, max_bytes: Any) -> None:
    """max_bytes=10.5 is refused naming the value (it silently became 10)."""
    with pytest.raises(ValueError, match="not a whole number of bytes"):
        mplog.setup_logging(tmp_path / "app.log", max_bytes=max_bytes)
    with pytest.raises(ValueError, match=re.escape(f"maxBytes={max_bytes!r}")):
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", maxBytes=max_bytes)


@pytest.mark.parametrize("fsync", [0, 1])
def test_fsync_0_and_1_are_refused_as_ambiguous(tmp_path: Path, fsync: int) -> None:
    """fsync=1 meant a 1 s group commit while fsync=0 was an error: both are refused, with
    what to write instead."""
    with pytest.raises(ValueError, match=f"fsync={fsync} is ambiguous") as info:
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", fsync=fsync)
    assert "fsync=True" in str(info.value)
    assert "fsync=False" in str(info.value)
    assert f"fsync={float(fsync)!r}" in str(info.value)


@pytest.mark.parametrize(
    ("fsync", "parsed"), [(True, True), (False, False), (1.0, 1.0), (2, 2.0), ("1 s", 1.0)]
)
def test_fsync_forms_that_say_what_they_mean(tmp_path: Path, fsync: Any, parsed: Any) -> None:
    """True, False, and intervals as floats, strings (and ints other than 0 and 1) work."""
    handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", fsync=fsync, delay=True)
    handler.close()
    assert handler._options.fsync == parsed
    assert type(handler._options.fsync) is type(parsed)


# -- path mistakes ---------------------------------------------------------------------------


def test_a_parent_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    """logs/app.log where logs is a file: the error names that file, not permissions."""
    (tmp_path / "logs").write_text("not a directory")
    for path in (tmp_path / "logs" / "app.log", tmp_path / "logs" / "sub" / "app.log"):
        with pytest.raises(NotADirectoryError) as info:
            mplog.ConcurrentRotatingFileHandler(path)
        message = str(info.value)
        assert f"{tmp_path / 'logs'} is a file, not a directory" in message
        assert "permission" not in message


def test_a_log_path_that_is_a_directory_is_named_as_such(tmp_path: Path) -> None:
    """A log path that is a directory: "is a directory", with a file name to use instead,
    and nothing is created next to it."""
    (tmp_path / "logs").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        mplog.setup_logging(tmp_path / "logs")
    message = str(info.value)
    assert "is a directory" in message
    assert str(tmp_path / "logs" / "app.log") in message
    assert "permission" not in message
    assert os.listdir(tmp_path) == ["logs"]


def test_a_trailing_slash_is_refused_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setup_logging("logs2/") created a file named logs2; now it says to name a file in it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="names a directory") as info:
        mplog.setup_logging("logs2/")
    assert "'logs2/app.log'" in str(info.value)
    assert os.listdir(tmp_path) == []


# -- mplog's own reports ---------------------------------------------------------------------

_ROTATION_IMPOSSIBLE = """
import logging, os, sys
import mplog
directory, debug = sys.argv[1], sys.argv[2] == "debug"
handler = mplog.ConcurrentRotatingFileHandler(
    os.path.join(directory, "app.log"), maxBytes=100, backupCount=1, debug=debug
)
os.makedirs(os.path.join(directory, "app.log.1", "taken"))  # a backup name nobody can take
log = logging.getLogger("app")
log.propagate = False
log.addHandler(handler)
for i in range(20):
    log.warning("record %02d %s", i, "x" * 40)
handler.close()
"""


def test_a_rotation_that_cannot_happen_is_one_warning_line(tmp_path: Path) -> None:
    """mplog's report of a rotation it cannot make is one line on stderr (no
    '--- Logging error ---', no traceback), and no record is lost."""
    result = _run(_ROTATION_IMPOSSIBLE, str(tmp_path), "plain")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mplog warning: cannot rotate {tmp_path / 'app.log'}")
    assert "Is a directory" in lines[0]
    text = (tmp_path / "app.log").read_text()
    assert [line.split()[1] for line in text.splitlines()] == [f"{i:02d}" for i in range(20)]


def test_the_traceback_of_a_report_comes_with_debug(tmp_path: Path) -> None:
    """With debug=True the same report is preceded by its traceback."""
    result = _run(_ROTATION_IMPOSSIBLE, str(tmp_path), "debug")
    assert result.returncode == 0, result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.count("mplog warning: cannot rotate") == 1
    assert "--- Logging error ---" not in result.stderr


def test_a_handle_error_override_still_sees_mplogs_reports(tmp_path: Path) -> None:
    """The reports still go through handleError: an override gets the record and the
    error, and nothing is printed."""
    seen: list[tuple[str, str]] = []

    class Quiet(mplog.ConcurrentRotatingFileHandler):
        def handleError(self, record: logging.LogRecord) -> None:
            seen.append((record.name, type(sys.exc_info()[1]).__name__))

    handler = Quiet(tmp_path / "app.log", maxBytes=100, backupCount=1)
    (tmp_path / "app.log.1" / "taken").mkdir(parents=True)
    try:
        for i in range(5):
            handler.emit(logging.makeLogRecord({"msg": f"record {i} " + "x" * 40}))
    finally:
        handler.close()
    assert seen == [("mplog", "IsADirectoryError")]


# -- maxBytes without backupCount --------------------------------------------------------------


def test_max_bytes_without_backup_count_warns_at_construction(tmp_path: Path) -> None:
    """maxBytes=200 with the default backupCount=0 never rotates (the stdlib's rule): a
    warning says so at construction, pointing at the caller."""
    with pytest.warns(UserWarning, match="maxBytes=200 with backupCount=0 never rotates") as info:
        handler = mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", maxBytes=200)
    handler.close()
    assert info[0].filename == __file__


@pytest.mark.parametrize(
    "kwargs", [{"maxBytes": 200, "backupCount": 1}, {"maxBytes": 200, "when": "midnight"}, {}]
)
def test_no_warning_when_rotation_works(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    """Rotation on (or no maxBytes): no warning; setup_logging's own default of 5 backups
    gives none either."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mplog.ConcurrentRotatingFileHandler(tmp_path / "app.log", **kwargs).close()
        handler = mplog.setup_logging(tmp_path / "b.log", max_bytes=200)
        assert handler is not None
        handler.close()


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_demo_progress_off_a_terminal_is_lines_without_carriage_returns(tmp_path: Path) -> None:
    """Progress written to a file or a CI log: whole lines, no '\\r' redraws."""
    result = subprocess.run(
        [sys.executable, "-m", "mplog", "demo", "-p", "2", "-n", "3000", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines, "some progress is shown"
    assert all(re.fullmatch(r"  [\d,]+/6,000 records", line) for line in lines), lines
    assert lines[-1] == "  6,000/6,000 records"


def test_a_bench_option_error_prints_the_bench_usage() -> None:
    """--plot without matplotlib: the error comes with `mplog bench`'s usage, not the
    top-level one."""
    code = """
    import sys
    sys.modules["matplotlib"] = None  # as if not installed
    from mplog._cli import main
    sys.exit(main(sys.argv[1:]))
    """
    result = _run(code, "bench", "--plot", "out.png")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: mplog bench ")
    assert "mplog bench: error: --plot: " in result.stderr
    assert "pip install 'mplog[plot]'" in result.stderr


def test_logs_written_by_the_examples_are_ignored_by_git() -> None:
    """The examples and README snippets write logs/ in the checkout: git ignores it."""
    assert "logs/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


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
    print(mplog.__version__ != "", "mplog._handler" in sys.modules)
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


# -- CI on the oldest supported Python -------------------------------------------------------------


def test_ci_runs_the_tests_on_the_oldest_supported_python_too() -> None:
    """.ci/run tests on the Python that requires-python names as the oldest, in a venv of
    its own, after the newest; it is valid bash."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (oldest,) = re.findall(r'requires-python = ">=(3\.\d+)"', pyproject)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"OLDEST={oldest}\n" in ci
    assert ci.count("python -m pytest\n") == 2
    assert ci.index('"$newest" -m venv') < ci.index('"$oldest" -m venv')
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True, timeout=30)
