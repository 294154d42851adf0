"""Every example in examples/ runs as it is, and its log files hold every record exactly once.

Each example runs in a subprocess (``sys.executable``, cwd = a temporary
directory, ``MPLOG_EXAMPLE_DIR`` pointing at the log directory).  Servers
(gunicorn, uvicorn) listen on 127.0.0.1 only, get a bounded number of requests
and are stopped by PID; every child is reaped (its process group killed) on
every exit path.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from helpers import (
    EXAMPLES,
    assert_exactly_once,
    example_env,
    files_of_log,
    free_port,
    log_lines,
    process_group,
    running_server,
)

# mplog.DEFAULT_FORMAT, as the pool and YAML examples use it.
DEFAULT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<pid>\d+) (?P<level>[A-Z]+) "
    r"(?P<logger>[\w.]+): (?P<message>.*)"
)
REQUESTS = 200


# -- processes -------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 40) -> str:
    """Run *args* to completion in *cwd*; return its stdout (its process group dies on timeout)."""
    env = env or example_env()
    with process_group(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"{args} exited with {p.returncode}:\n{err}"
    return out


def _run_example(name: str, tmp_path: Path) -> tuple[str, Path]:
    """Run ``python examples/<name>`` in *tmp_path*; return its stdout and log directory."""
    log_dir = tmp_path / "example-logs"
    env = example_env(MPLOG_EXAMPLE_DIR=str(log_dir))
    out = _run([sys.executable, str(EXAMPLES / name)], tmp_path, env)
    assert not (tmp_path / "logs").exists(), "MPLOG_EXAMPLE_DIR was ignored"
    return out, log_dir


def _send_requests(port: int, count: int) -> list[str]:
    """GET / with a unique ``rid`` each, sequentially, on loopback; return the ids."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    ids = []
    for _ in range(count):
        rid = uuid.uuid4().hex
        with opener.open(f"http://127.0.0.1:{port}/?rid={rid}", timeout=10) as response:
            assert response.status == 200
            assert response.read() == b"ok\n"
        ids.append(rid)
    return ids


# -- log files -------------------------------------------------------------------------


def _records(log_dir: Path, name: str) -> list[re.Match[str]]:
    """Every record of *name* and its backups in mplog.DEFAULT_FORMAT; none may be torn."""
    lines = log_lines(log_dir, name)
    records = [DEFAULT_LINE.fullmatch(line) for line in lines]
    torn = [line for line, record in zip(lines, records) if record is None]
    assert not torn, f"{len(torn)} malformed lines, first: {torn[0]!r}"
    return [record for record in records if record is not None]


# -- the examples ----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_pool_fork(tmp_path: Path) -> None:
    """Pool workers' records are each in the size-rotated files once, counted per worker."""
    out, log_dir = _run_example("pool_fork.py", tmp_path)
    reported = {int(pid): int(n) for pid, n in re.findall(r"worker (\d+): (\d+) tasks", out)}
    records = _records(log_dir, "pool_fork.log")

    tasks = [(r["pid"], r["message"]) for r in records if r["message"].startswith("task ")]
    assert_exactly_once([int(msg.split()[1]) for _, msg in tasks], range(2000))
    logged = collections.Counter(int(pid) for pid, _ in tasks)
    assert logged == reported  # each worker's records, as many as it ran tasks
    parent = {int(r["pid"]) for r in records if not r["message"].startswith("task ")}
    assert len(parent) == 1
    assert parent.isdisjoint(logged)
    assert 1 <= len(logged) <= 4

    files = files_of_log(log_dir, "pool_fork.log")
    assert len(files) >= 3, "max_bytes='32 KB' should have rotated at least twice"
    assert [f.name for f in files] == [
        f"pool_fork.log.{i}" for i in range(len(files) - 1, 0, -1)
    ] + ["pool_fork.log"]
    assert all(f.stat().st_size <= 32_000 for f in files)


@pytest.mark.timeout(60)
def test_process_pool_spawn(tmp_path: Path) -> None:
    """Spawned executor workers, set up by worker_initializer(), log every task once."""
    out, log_dir = _run_example("process_pool_spawn.py", tmp_path)
    records = _records(log_dir, "process_pool_spawn.log")
    squares = [r for r in records if r["message"].startswith("square(")]
    parent = [r for r in records if r["message"].startswith("parent: ")]

    results = [re.fullmatch(r"square\((\d+)\) = (\d+)", r["message"]) for r in squares]
    assert all(m is not None and int(m[1]) ** 2 == int(m[2]) for m in results)
    assert_exactly_once([int(m[1]) for m in results if m is not None], range(300))
    assert len(parent) == 2
    assert {r["pid"] for r in parent} == {parent[0]["pid"]}
    workers = {r["pid"] for r in squares}
    assert 1 <= len(workers) <= 3
    assert parent[0]["pid"] not in workers
    total = sum(n * n for n in range(300))
    assert f"sum of squares = {total}" in parent[1]["message"]
    assert f"sum of squares: {total}" in out


@pytest.mark.timeout(60)
def test_yaml_config(tmp_path: Path) -> None:
    """logging.yaml's options all take effect; every worker record is in app.log once."""
    out, log_dir = _run_example("yaml_config.py", tmp_path)
    assert (
        "ConcurrentRotatingFileHandler: maxBytes=1000000 backupCount=7 suffix=%Y-%m-%d "
        "next rotation at 00:00:00 mode=0o640"
    ) in out
    records = _records(log_dir, "app.log")
    tasks = [r for r in records if r["message"].startswith("task ")]
    assert_exactly_once([int(r["message"].split()[1]) for r in tasks], range(500))
    assert not [r for r in records if r["logger"] == "noisy.library"]  # level: WARNING
    others = [r for r in records if not r["message"].startswith("task ")]
    assert [r["message"] for r in others] == ["starting 500 tasks", "all tasks done"]
    assert others[0]["pid"] not in {r["pid"] for r in tasks}
    for path in (log_dir / "app.log", log_dir / ".__app.lock"):  # chmod: "0640"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name

    # As an application uses it: setup_logging(config="logging.yaml"), with the
    # file's relative filename resolved against the file's directory.
    shutil.copy(EXAMPLES / "logging.yaml", tmp_path / "logging.yaml")
    script = (
        "import logging, mplog\n"
        "mplog.setup_logging(config='logging.yaml')\n"
        "logging.getLogger('direct').warning('configured from the YAML file')\n"
    )
    _run([sys.executable, "-c", script], tmp_path)
    (record,) = _records(tmp_path / "logs", "app.log")
    assert record["logger"] == "direct"
    assert record["message"] == "configured from the YAML file"


_SMALL_ROTATION = """\
import sys
sys.path.insert(0, {examples!r})
from gunicorn_conf import *  # noqa: F403 - the example, with tiny rotation limits
for handler in logconfig_dict["handlers"].values():  # noqa: F405
    handler["maxBytes"], handler["backupCount"] = 2000, 1000
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("rotation", ["as shipped", "2000 bytes"])
def test_gunicorn_conf(tmp_path: Path, rotation: str) -> None:
    """3 gunicorn workers: every request is in the access log once, and its app record too,
    also when the logs rotate every few dozen requests."""
    log_dir = tmp_path / "example-logs"
    error_log = log_dir / "gunicorn.error.log"
    port = free_port()
    # gunicorn >= 25 puts its control socket in $XDG_RUNTIME_DIR (else in ~/.gunicorn).
    env = example_env(MPLOG_EXAMPLE_DIR=str(log_dir), XDG_RUNTIME_DIR=str(tmp_path))
    config = EXAMPLES / "gunicorn_conf.py"
    if rotation != "as shipped":
        config = tmp_path / "gunicorn_small_rotation.py"
        config.write_text(_SMALL_ROTATION.format(examples=str(EXAMPLES)), encoding="utf-8")
    args = [sys.executable, "-m", "gunicorn", "-c", str(config)]
    args += ["--bind", f"127.0.0.1:{port}"]
    with running_server(args, tmp_path, (error_log, "Booting worker with pid", 3), env=env):
        ids = _send_requests(port, REQUESTS)

    access = log_lines(log_dir, "gunicorn.access.log")
    assert all(
        re.fullmatch(r'\[\d+\] 127\.0\.0\.1 - - \[.+\] "GET /\?rid=\w+ .+', a) for a in access
    )
    assert_exactly_once(re.findall(r"rid=(\w+)", "\n".join(access)), ids)

    errors = log_lines(log_dir, "gunicorn.error.log")
    handled = [line for line in errors if " app: handled /?rid=" in line]
    assert_exactly_once([line.rsplit("=", 1)[1] for line in handled], ids)
    text = "\n".join(errors)
    booted = re.findall(r"Booting worker with pid: (\d+)", text)
    exited = re.findall(r"Worker exiting \(pid: (\d+)\)", text)
    assert len(booted) == 3
    assert sorted(exited) == sorted(booted)  # each worker's last record is there too
    served = set(re.findall(r"^\[(\d+)\]", "\n".join(access), re.MULTILINE))
    assert served <= set(booted)
    assert text.count("Shutting down: Master") == 1
    if rotation != "as shipped":
        assert len(files_of_log(log_dir, "gunicorn.access.log")) > 5, "expected rotations"
        assert all(p.stat().st_size <= 2000 for p in log_dir.glob("gunicorn.access.log.*"))


@pytest.mark.timeout(60)
def test_django_settings(tmp_path: Path) -> None:
    """Django's LOGGING, applied by django.setup() in 4 processes, logs every job once."""
    _out, log_dir = _run_example("django_settings.py", tmp_path)
    line = re.compile(r"\S+ \S+ (?P<pid>\d+) (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)")
    lines = log_lines(log_dir, "django.log")
    records = [line.fullmatch(text) for text in lines]
    assert all(records), [text for text, r in zip(lines, records) if r is None][:3]
    jobs = [r for r in records if r is not None and r["logger"] == "myapp.jobs"]
    main = [r for r in records if r is not None and r["logger"] == "myapp"]
    assert_exactly_once([int(r["message"].split()[1]) for r in jobs], range(300))
    assert [r["message"] for r in main] == ["starting 300 jobs", "all jobs handled"]
    assert main[0]["pid"] not in {r["pid"] for r in jobs}

    # As a project uses it: DJANGO_SETTINGS_MODULE, and Django's own loggers.
    env = example_env(
        MPLOG_EXAMPLE_DIR=str(log_dir),
        DJANGO_SETTINGS_MODULE="django_settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
    )
    script = (
        "import django, logging\n"
        "django.setup()\n"
        "logging.getLogger('django.request').warning('Not Found: /missing')\n"
    )
    _run([sys.executable, "-c", script], tmp_path, env)
    last = line.fullmatch(log_lines(log_dir, "django.log")[-1])
    assert last is not None
    assert (last["logger"], last["message"]) == ("django.request", "Not Found: /missing")


UVICORN_CONFIG_CHECK = """
import logging, multiprocessing, sys
import mplog

def work(n):
    logging.getLogger("uvicorn.error").info("error-logger %d", n)
    logging.getLogger("uvicorn.access").info("access-logger %d", n)
    logging.getLogger("app").info("app-logger %d", n)

if __name__ == "__main__":
    mplog.setup_logging(config=sys.argv[1])
    with multiprocessing.Pool(3, initializer=mplog.worker_initializer()) as pool:
        pool.map(work, range(300), chunksize=10)
"""


@pytest.mark.timeout(60)
def test_uvicorn_log_config_with_setup_logging(tmp_path: Path) -> None:
    """The uvicorn YAML applied by setup_logging(config=...) routes each logger's records once."""
    config = tmp_path / "uvicorn_log_config.yaml"  # filenames resolve next to the YAML
    shutil.copy(EXAMPLES / "uvicorn_log_config.yaml", config)
    script = tmp_path / "check.py"
    script.write_text(UVICORN_CONFIG_CHECK)
    _run([sys.executable, str(script), str(config)], tmp_path)

    log_dir = tmp_path / "logs"
    general = _records(log_dir, "uvicorn.log")
    by_logger = collections.defaultdict(list)
    for r in general:
        by_logger[r["logger"]].append(int(r["message"].split()[1]))
    assert set(by_logger) == {"uvicorn.error", "app"}
    assert_exactly_once(by_logger["uvicorn.error"], range(300))
    assert_exactly_once(by_logger["app"], range(300))
    access = log_lines(log_dir, "uvicorn.access.log")
    assert all(" access-logger " in a for a in access)
    assert_exactly_once([int(a.rsplit(" ", 1)[1]) for a in access], range(300))


@pytest.mark.timeout(90)
def test_uvicorn_log_config_with_uvicorn(tmp_path: Path) -> None:
    """uvicorn --workers 2 --log-config: every request is in the access log once."""
    log_dir = tmp_path / "logs"  # uvicorn resolves the YAML's relative names against the cwd
    general_log = log_dir / "uvicorn.log"
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "app:asgi_app", "--app-dir", str(EXAMPLES)]
    args += ["--log-config", str(EXAMPLES / "uvicorn_log_config.yaml"), "--workers", "2"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    with running_server(
        args, tmp_path, (general_log, "Application startup complete", 2), env=example_env()
    ):
        ids = _send_requests(port, REQUESTS)

    access = log_lines(log_dir, "uvicorn.access.log")
    assert_exactly_once(
        re.findall(r'"GET /\?rid=(\w+) HTTP/1\.1" 200$', "\n".join(access), re.M), ids
    )
    assert len(access) == REQUESTS
    records = _records(log_dir, "uvicorn.log")
    handled = [r["message"] for r in records if r["logger"] == "app"]
    assert_exactly_once([m.rsplit("=", 1)[1] for m in handled], ids)
    messages = "\n".join(r["message"] for r in records)
    started_pids = re.findall(r"Started server process \[(\d+)\]", messages)
    finished_pids = re.findall(r"Finished server process \[(\d+)\]", messages)
    assert len(started_pids) == 2
    assert sorted(finished_pids) == sorted(started_pids)
    assert messages.count("Stopping parent process") == 1


@pytest.mark.timeout(60)
def test_json_lines(tmp_path: Path) -> None:
    """Every line of the rotated JSON-lines files parses; each worker record is there once."""
    _out, log_dir = _run_example("json_lines.py", tmp_path)
    files = files_of_log(log_dir, "json_lines.jsonl")
    assert len(files) >= 2, "max_bytes='64 KB' should have rotated"
    entries = [json.loads(line) for line in log_lines(log_dir, "json_lines.jsonl")]

    records = [e for e in entries if "seq" in e]
    assert_exactly_once(
        [(e["worker"], e["seq"]) for e in records], [(w, s) for w in range(3) for s in range(400)]
    )
    assert all(e["message"] == f"record {e['seq']}\nwith a second line, ünïcödé" for e in records)
    per_pid = collections.Counter(e["pid"] for e in records)
    assert sorted(per_pid.values()) == [400, 400, 400]  # one process per worker number
    assert len({(e["pid"], e["worker"]) for e in records}) == 3

    errors = [e for e in entries if e["level"] == "ERROR"]
    assert sorted(e["worker"] for e in errors) == [0, 1, 2]
    assert all("ValueError: invalid literal" in e["exception"] for e in errors)
    parent = [e for e in entries if e["logger"] == "json_lines"]
    assert [e["message"] for e in parent] == ["starting 3 workers", "done"]
    assert parent[1]["exitcodes"] == [0, 0, 0]
    assert len(entries) == 3 * 400 + 3 + 2


_JSON_LIBRARIES = {  # library -> (module to import, where worker and seq are in an entry)
    "python-json-logger": ("pythonjsonlogger", lambda e: e),
    "structlog": ("structlog", lambda e: e),
    "loguru": ("loguru", lambda e: e["record"]["extra"]),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("library", list(_JSON_LIBRARIES))
def test_json_libraries(tmp_path: Path, library: str) -> None:
    """python-json-logger, structlog and loguru write JSON lines through mplog from several
    processes: every line parses, each worker record is there once, the files rotated.
    (The json extra installs the three; the test extra, which CI uses, includes it.)"""
    module, fields = _JSON_LIBRARIES[library]
    pytest.importorskip(module, reason=f"{library} is not installed (the json extra)")
    log_dir = tmp_path / "example-logs"
    env = example_env(MPLOG_EXAMPLE_DIR=str(log_dir))
    out = _run([sys.executable, str(EXAMPLES / "json_libraries.py"), library], tmp_path, env)
    assert f"logs in {log_dir / library}.jsonl" in out
    name = f"{library}.jsonl"
    assert len(files_of_log(log_dir, name)) >= 2, "max_bytes='32 KB' should have rotated"
    entries = [fields(json.loads(line)) for line in log_lines(log_dir, name)]
    records = [e for e in entries if "seq" in e]
    assert_exactly_once(
        [(e["worker"], e["seq"]) for e in records], [(w, s) for w in range(3) for s in range(200)]
    )
    assert [e["exitcodes"] for e in entries if "exitcodes" in e] == [[0, 0, 0]]
    assert len(entries) == 3 * 200 + 2
