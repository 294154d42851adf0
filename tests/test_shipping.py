"""Shipper-ready logs: ``{hostname}`` in file names, ``compress_delay``, mplog's own files
hidden from shippers, and the example shipper configurations in ``examples/shipping/``,
with a real rsyslog and a paused shipper while the writers rotate."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import gzip
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import mplog
from helpers import log_to
from mplog import _placeholders as placeholders

ROOT = Path(__file__).resolve().parent.parent
SHIPPING = ROOT / "examples" / "shipping"
HERE = Path(__file__).resolve().parent
EXAMPLE_DIR = "/var/log/myapp"
RECORD = 100

# Writers for the end-to-end tests: ID, records, records/s, maxBytes, compress_delay.
WRITER = """
import logging, sys, time
import mplog
path, wid, n, rate, max_bytes, delay = sys.argv[1:7]
handler = mplog.ConcurrentRotatingFileHandler(
    path, maxBytes=int(max_bytes), backupCount=10_000, when="S", compress="gzip",
    compress_delay=float(delay),
)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("writer")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
start = time.monotonic()
for seq in range(int(n)):
    log.info("w%s-%06d %s", wid, seq, "x" * 60)
    pause = start + (seq + 1) / float(rate) - time.monotonic()
    if pause > 0:
        time.sleep(pause)
handler.close()
"""


def _handler(path: Path, **options: Any) -> mplog.ConcurrentRotatingFileHandler:
    handler = mplog.ConcurrentRotatingFileHandler(path, **options)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def _wait_for(condition: Any, timeout: float = 30.0) -> bool:
    """Poll *condition* until it is true or *timeout* seconds passed (a deadline for a
    hang, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- {hostname} ----------------------------------------------------------------------


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(placeholders.PLACEHOLDERS, "{hostname}", lambda: "web-1")
    return "web-1"


def test_hostname_in_the_filename_becomes_this_hosts_name(tmp_path: Path, host: str) -> None:
    """filename='{hostname}.log' writes <host>.log, and the lock file is named after it."""
    handler = _handler(tmp_path / "{hostname}.log")
    log_to(handler, "hello")
    handler.close()
    assert handler.baseFilename == str(tmp_path / f"{host}.log")
    assert (tmp_path / f"{host}.log").read_text() == "hello\n"
    assert sorted(os.listdir(tmp_path)) == [f".__{host}.lock", f".__{host}.open", f"{host}.log"]


def test_the_real_hostname_is_used(tmp_path: Path) -> None:
    """Without a stand-in, the placeholder is socket.gethostname()."""
    import socket

    handler = _handler(tmp_path / "app-{hostname}.log")
    handler.close()
    assert handler.baseFilename == str(tmp_path / f"app-{socket.gethostname()}.log")


def test_other_braces_stay_as_written(tmp_path: Path, host: str) -> None:
    """Only known placeholders are replaced: '{a}' and '{{hostname}}' braces are kept."""
    handler = _handler(tmp_path / "{a}" / "{{hostname}}.log")
    handler.close()
    assert handler.baseFilename == str(tmp_path / "{a}" / "{web-1}.log")


def test_a_hostname_that_cannot_be_a_file_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host name with a slash fails at construction, naming the filename."""
    monkeypatch.setitem(placeholders.PLACEHOLDERS, "{hostname}", lambda: "a/b")
    with pytest.raises(ValueError, match=r"filename=.*\{hostname\} is 'a/b'"):
        _handler(tmp_path / "{hostname}.log")


def test_setup_logging_expands_the_hostname(tmp_path: Path, host: str) -> None:
    """setup_logging('logs/{hostname}/app.log') creates the host's directory."""
    handler = mplog.setup_logging(tmp_path / "logs" / "{hostname}" / "app.log")
    assert handler is not None
    logging.getLogger("t").info("ready")
    assert (tmp_path / "logs" / host / "app.log").exists()


def test_a_yaml_config_serves_every_host(tmp_path: Path, host: str) -> None:
    """A YAML config's filename with {hostname} (quoted) creates the host's directory
    next to the config, not a directory literally named '{hostname}'."""
    config = tmp_path / "logging.yaml"
    config.write_text(
        "version: 1\n"
        "handlers:\n"
        "  file:\n"
        "    class: mplog.ConcurrentRotatingFileHandler\n"
        '    filename: "logs/{hostname}/app.log"\n'
        "root:\n"
        "  level: INFO\n"
        "  handlers: [file]\n",
        encoding="utf-8",
    )
    handler = mplog.setup_logging(config=config)
    assert handler is not None
    logging.getLogger("t").info("ready")
    assert "ready" in (tmp_path / "logs" / host / "app.log").read_text()
    assert sorted(os.listdir(tmp_path / "logs")) == [host]


# -- compress_delay ------------------------------------------------------------------


def _names(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def test_compress_delay_defaults_to_30_seconds_and_parses_durations(tmp_path: Path) -> None:
    """The default is 30 s; '2 min' and timedeltas parse; a bad value names the option."""
    import datetime

    assert _handler(tmp_path / "a.log", delay=True).compress_delay == 30.0
    assert _handler(tmp_path / "b.log", delay=True, compress_delay="2 min").compress_delay == 120
    one = datetime.timedelta(seconds=1)
    assert _handler(tmp_path / "c.log", delay=True, compress_delay=one).compress_delay == 1.0
    with pytest.raises(ValueError, match="compress_delay='soon'"):
        _handler(tmp_path / "d.log", compress_delay="soon")


def test_a_young_backup_stays_plain_at_close_and_the_next_process_compresses_it(
    tmp_path: Path,
) -> None:
    """close() does not wait out the delay: a backup younger than it stays plain (and
    whole); a later process's close(), once it is old enough, compresses it."""
    path = tmp_path / "app.log"
    handler = _handler(path, maxBytes=RECORD, backupCount=5, compress="gzip")
    for n in range(3):
        log_to(handler, f"{n:0{RECORD - 1}d}")
    handler.close()
    assert _names(tmp_path) == ["app.log", "app.log.1", "app.log.2"]
    assert (tmp_path / "app.log.1").read_text() == f"{1:0{RECORD - 1}d}\n"
    old = time.time() - 60
    for name in ("app.log.1", "app.log.2"):
        os.utime(tmp_path / name, (old, old))
    later = _handler(path, maxBytes=RECORD, backupCount=5, compress="gzip")
    later.close()
    assert _names(tmp_path) == ["app.log", "app.log.1.gz", "app.log.2.gz"]
    assert gzip.decompress((tmp_path / "app.log.2.gz").read_bytes()) == b"0" * (RECORD - 1) + b"\n"


def test_close_compresses_backups_older_than_the_delay_only(tmp_path: Path) -> None:
    """Of two backups, close() compresses the one whose last write is older than the delay."""
    path = tmp_path / "app.log"
    handler = _handler(path, maxBytes=RECORD, backupCount=5, compress="gzip")
    for n in range(2):
        log_to(handler, f"{n:0{RECORD - 1}d}")
    old = time.time() - 60
    os.utime(tmp_path / "app.log.1", (old, old))
    log_to(handler, f"{2:0{RECORD - 1}d}")  # app.log.1 -> .2 (old), new .1 (young)
    handler.close()
    assert _names(tmp_path) == ["app.log", "app.log.1", "app.log.2.gz"]


def test_a_deferred_backup_is_compressed_without_another_rotation(tmp_path: Path) -> None:
    """The timer compresses a backup once the delay passed, with no rotation or close."""
    path = tmp_path / "app.log"
    handler = _handler(path, maxBytes=RECORD, backupCount=5, compress="gzip", compress_delay=0.5)
    try:
        for n in range(2):
            log_to(handler, f"{n:0{RECORD - 1}d}")
        assert _wait_for(lambda: _names(tmp_path) == ["app.log", "app.log.1.gz"])
    finally:
        handler.close()


def test_a_closed_handler_leaves_no_timer_behind(tmp_path: Path) -> None:
    """close() cancels the timer: the young backup stays plain and no thread is left."""
    import threading

    handler = _handler(tmp_path / "app.log", maxBytes=RECORD, backupCount=5, compress="gzip")
    for n in range(2):
        log_to(handler, f"{n:0{RECORD - 1}d}")
    assert _wait_for(lambda: handler._archiver is not None and handler._archiver._timer is not None)
    handler.close()
    assert _wait_for(
        lambda: not any(t.name.startswith("mplog-compress") for t in threading.enumerate())
    )
    assert _names(tmp_path) == ["app.log", "app.log.1"]


# -- mplog's own files and the shippers' patterns ------------------------------------


def _directory_while_compressing(tmp_path: Path) -> tuple[Path, list[str]]:
    """A log directory as a shipper sees it mid-compression: the active log, plain and
    compressed backups, the lock file and a compression's temporary file."""
    seen: list[str] = []

    def gzip_and_look(source: str) -> str:
        seen.extend(os.listdir(os.path.dirname(source)))
        with open(source, "rb") as f, gzip.open(source + ".gz", "wb") as out:
            out.write(f.read())
        return source + ".gz"

    gzip_and_look.suffix = ".gz"  # type: ignore[attr-defined]
    logs = tmp_path / "logs"
    handler = _handler(
        logs / "app.log", maxBytes=RECORD, backupCount=5, compress=gzip_and_look, compress_delay=0
    )
    for n in range(3):
        log_to(handler, f"{n:0{RECORD - 1}d}")
    handler.close()
    (logs / "app.log.9").write_text("a plain backup\n")  # as if still young
    return logs, sorted(set(seen) | set(os.listdir(logs)))


def _is_log(name: str) -> bool:
    return re.fullmatch(r"app\.log(\.\d+)?", name) is not None


def test_every_file_of_mplogs_own_starts_with_a_dot(tmp_path: Path) -> None:
    """The README's exclude pattern '.*' matches the lock file and the temporaries, and
    no log or backup."""
    _, names = _directory_while_compressing(tmp_path)
    own = [name for name in names if not _is_log(name) and not name.endswith(".gz")]
    assert ".__app.lock" in own
    assert any(re.fullmatch(r"\.app\.log\.mplog-\d+-[0-9a-f]+\.tmp", name) for name in own)
    assert all(fnmatch.fnmatchcase(name, ".*") for name in own)
    assert not any(fnmatch.fnmatchcase(name, ".*") for name in names if _is_log(name))


def _local(pattern: str, directory: Path) -> str:
    return pattern.replace(EXAMPLE_DIR, str(directory))


def test_the_otel_collector_example_ships_the_log_and_its_plain_backups_only(
    tmp_path: Path,
) -> None:
    """The filelog receiver's include and exclude, matched as its Go glob does ('*' also
    matches a leading dot), select the log and its plain backups: not the lock file,
    the temporaries or the compressed backups."""
    logs, names = _directory_while_compressing(tmp_path)
    config = yaml.safe_load((SHIPPING / "otelcol-filelog.yaml").read_text(encoding="utf-8"))
    receiver = config["receivers"]["filelog"]
    assert receiver["start_at"] == "beginning"
    assert config["service"]["pipelines"]["logs"]["receivers"] == ["filelog"]

    def matches(name: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(str(logs / name), _local(p, logs)) for p in patterns)

    shipped = [n for n in names if matches(n, receiver["include"])]
    shipped = [n for n in shipped if not matches(n, receiver["exclude"])]
    assert shipped == [n for n in names if _is_log(n)]
    # and without the exclude of hidden files, the temporaries would be shipped
    assert any(n.startswith(".app.log.mplog-") for n in names if matches(n, receiver["include"]))


def _fluent_bit_input(text: str) -> dict[str, str]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
        else:
            key, value = line.split(None, 1)
            sections[-1][1][key] = value
    return next(values for name, values in sections if name == "INPUT")


def test_the_fluent_bit_example_ships_the_log_and_its_plain_backups_only(
    tmp_path: Path,
) -> None:
    """Fluent Bit's tail Path (glob(3): skips dot files) minus Exclude_Path (shell
    patterns on the full path) selects the log and its plain backups only."""
    logs, _ = _directory_while_compressing(tmp_path)
    tail = _fluent_bit_input((SHIPPING / "fluent-bit.conf").read_text(encoding="utf-8"))
    assert tail["Name"] == "tail"
    assert tail["Read_from_Head"] == "On"
    assert int(tail["Rotate_Wait"]) >= 30  # as long as mplog keeps a backup plain
    paths = glob.glob(_local(tail["Path"], logs))
    excluded = tail["Exclude_Path"].split(",")
    shipped = sorted(
        os.path.basename(p) for p in paths if not any(fnmatch.fnmatch(p, e) for e in excluded)
    )
    assert shipped == sorted(n for n in os.listdir(logs) if _is_log(n))
    assert any(fnmatch.fnmatch(str(logs / ".__app.lock"), e) for e in excluded)


# -- end to end ------------------------------------------------------------------------


def _start_writers(log: Path, workers: int, records: int, rate: int, delay: float) -> list[Any]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(log),
                str(w),
                str(records),
                str(rate),
                "20000",
                str(delay),
            ]
        )
        for w in range(workers)
    ]


def _reap(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def _expected(workers: int, records: int) -> list[str]:
    return sorted(f"w{w}-{s:06d} {'x' * 60}" for w in range(workers) for s in range(records))


def _difference(what: str, got: list[str], expected: list[str]) -> str:
    """A short account of how *got* differs from *expected* (a full diff of 10,000 lines
    hides the few that matter)."""
    counts, wanted = Counter(got), set(expected)
    missing = sorted(wanted - set(counts))
    extra = sorted(line for line in counts if line not in wanted)
    repeated = sorted(line for line, n in counts.items() if n > 1)
    return (
        f"{what}: {len(got)} lines for {len(expected)} records; {len(missing)} missing "
        f"{missing[:5]}, {len(repeated)} repeated {repeated[:5]}, {len(extra)} unexpected "
        f"{[line[:80] for line in extra[:5]]}"
    )


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line]


def _at_a_file_edge(logs: Path, lines: list[str], edge: int = 3) -> list[str]:
    """Those of *lines* that are not among the first or last *edge* records of the
    file mplog wrote them to (the active file or a backup, compressed or not)."""
    near_an_edge: set[str] = set()
    for name in os.listdir(logs):
        if name.startswith("."):
            continue
        data = (logs / name).read_bytes()
        records = (gzip.decompress(data) if name.endswith(".gz") else data).decode().splitlines()
        near_an_edge.update(records[:edge] + records[-edge:])
    return [line for line in lines if line not in near_an_edge]


def _every_record_in_the_files(logs: Path) -> list[str]:
    lines: list[str] = []
    for name in os.listdir(logs):
        if name.startswith("."):
            continue
        data = (logs / name).read_bytes()
        lines += (gzip.decompress(data) if name.endswith(".gz") else data).decode().splitlines()
    return sorted(lines)


def _caught_up(output: Path, expected: int) -> None:
    """Wait until *output* has *expected* lines or stops growing for 10 s."""
    last, since = -1, time.monotonic()
    while True:
        count = len(_lines(output))
        if count >= expected:
            return
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > 10:
            return
        time.sleep(0.1)


def _rsyslogd() -> str | None:
    return shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
    )


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    """A private rsyslogd running examples/shipping/rsyslog-imfile.conf, its forwarding
    action replaced by a file; yields the log directory, that file and the process."""
    binary = _rsyslogd()
    if binary is None:
        pytest.skip("rsyslogd is not installed (apt-get install rsyslog; .ci/run does)")
    logs, state, output = tmp_path / "logs", tmp_path / "state", tmp_path / "shipped.log"
    logs.mkdir()
    state.mkdir()
    example = (SHIPPING / "rsyslog-imfile.conf").read_text(encoding="utf-8")
    config, forwards = re.subn(
        r'action\(type="omfwd"[^)]*\)',
        f'action(type="omfile" file="{output}" template="mplog-raw")',
        _local(example, logs),
    )
    assert forwards == 1
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{state}")\n'
        'template(name="mplog-raw" type="string" string="%msg%\\n")\n' + config,
        encoding="utf-8",
    )
    mplog.ConcurrentRotatingFileHandler(logs / "app.log").close()  # imfile opens it at start
    process = subprocess.Popen(
        [binary, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def following() -> bool:
            fds = f"/proc/{process.pid}/fd"
            links = []
            for fd in os.listdir(fds) if os.path.isdir(fds) else []:
                with contextlib.suppress(OSError):
                    links.append(os.readlink(f"{fds}/{fd}"))
            return str(logs / "app.log") in links

        assert _wait_for(following), "rsyslogd did not open the log"
        yield logs, output, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_rsyslog_ships_every_record_once_through_size_time_and_gzip_rotation(
    rsyslog: tuple[Path, Path, subprocess.Popen[bytes]],
) -> None:
    """Four writers rotate by size (many times a second) and time (every second) and gzip
    each backup 2 s after its last record (a short compress_delay), while a real rsyslogd
    follows app.log with the shipped config: it delivers no record twice, and every record
    except, now and then, a line or two at a rotation (imfile's own misses)."""
    logs, output, _ = rsyslog
    workers, records = 4, 2500
    writers = _start_writers(logs / "app.log", workers, records, rate=500, delay=2)
    try:
        for writer in writers:
            assert writer.wait(timeout=120) == 0
    finally:
        _reap(writers)
    _caught_up(output, workers * records)
    shipped = _lines(output)
    expected = _expected(workers, records)
    in_files = _every_record_in_the_files(logs)
    assert in_files == expected, _difference("in the files", in_files, expected)  # mplog's own
    gz = [name for name in os.listdir(logs) if name.endswith(".gz")]
    assert len(gz) >= 5, sorted(os.listdir(logs))  # it did rotate and compress
    duplicated = {line: n for line, n in Counter(shipped).items() if n > 1}
    assert not duplicated, _difference("shipped", shipped, expected)
    assert set(shipped) <= set(expected), _difference("shipped", shipped, expected)
    # imfile itself now and then misses a line at a rotation (rsyslog issue 523: the last
    # lines of a renamed file), the README says so; anything else missing would be mplog's.
    missing = sorted(set(expected) - set(shipped))
    assert len(missing) <= 2, _difference("shipped", shipped, expected)
    assert not _at_a_file_edge(logs, missing), _difference("shipped", shipped, expected)


def test_a_paused_shipper_catches_up_from_the_plain_backups(tmp_path: Path) -> None:
    """A shipper watching the rotated names (the OpenTelemetry Collector example's
    patterns) is stopped for 5 s while two writers rotate about once a second and
    compress with the default compress_delay: it catches up with every record once."""
    logs, output = tmp_path / "logs", tmp_path / "shipped.log"
    logs.mkdir()
    receiver = yaml.safe_load((SHIPPING / "otelcol-filelog.yaml").read_text(encoding="utf-8"))
    filelog = receiver["receivers"]["filelog"]
    include = [os.path.basename(p) for p in filelog["include"]]
    exclude = [os.path.basename(p) for p in filelog["exclude"]]
    tailer = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "shipping_tailer.py"),
            str(output),
            str(logs),
            *include,
            "--",
            *exclude,
        ]
    )
    workers, records = 2, 4000
    writers: list[subprocess.Popen[bytes]] = []
    try:
        writers = _start_writers(logs / "app.log", workers, records, rate=500, delay=30)
        assert _wait_for(lambda: len(_lines(output)) > 500)
        tailer.send_signal(signal.SIGSTOP)
        time.sleep(5)  # the pause under test, not a wait for a result
        rotated = [n for n in os.listdir(logs) if n.startswith("app.log.")]
        tailer.send_signal(signal.SIGCONT)
        for writer in writers:
            assert writer.wait(timeout=120) == 0
        _caught_up(output, workers * records)
    finally:
        tailer.send_signal(signal.SIGCONT)
        tailer.kill()
        tailer.wait()
        _reap(writers)
    assert len(rotated) >= 3, rotated  # it rotated during the pause
    shipped = _lines(output)
    expected = _expected(workers, records)
    assert not {line for line, n in Counter(shipped).items() if n > 1}, _difference(
        "shipped", shipped, expected
    )
    assert sorted(shipped) == expected, _difference("shipped", shipped, expected)


# -- the README --------------------------------------------------------------------------


def _readme_block(language: str) -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", readme, flags=re.DOTALL)


@pytest.mark.parametrize(
    ("language", "example"),
    [
        ("rsyslog", "rsyslog-imfile.conf"),
        ("yml", "otelcol-filelog.yaml"),
        ("ini", "fluent-bit.conf"),
    ],
)
def test_the_readme_shows_each_shipping_example_as_it_is(language: str, example: str) -> None:
    """The README's shipping configurations are the tested files, verbatim."""
    assert _readme_block(language) == [(SHIPPING / example).read_text(encoding="utf-8")]


def test_the_readme_states_the_exclude_pattern_the_tests_check() -> None:
    """The exclude pattern shown in *Shipping logs* is '.*', the one checked above against
    mplog's own files, and the collector example excludes exactly that in the log's
    directory."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Shipping logs", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```glob\n(.*?)```", section, flags=re.DOTALL)
    assert [block.strip() for block in blocks] == [".*"]
    config = yaml.safe_load((SHIPPING / "otelcol-filelog.yaml").read_text(encoding="utf-8"))
    assert f"{EXAMPLE_DIR}/.*" in config["receivers"]["filelog"]["exclude"]
