"""Run by test_shared_directory.py in subprocesses, as other users: what happens in a
log directory, or a temp directory, that several users write.

``python shared_dir_workers.py <uid> <command> <json arguments>``: imports mplog, drops
to *uid* (and the group of the same number; ``-1`` keeps the current user), runs the
command and prints its result as one JSON line.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import logging
import os
import shutil
import sys
import time
from typing import Any

import mplog
import mplog._permissions

RECORD = 40  # bytes of every record (text and newline)


def _drop_to(uid: int) -> None:
    if uid >= 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _record(number: int) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": f"record {number:06d} ".ljust(RECORD - 1, "x")})


class _Handler(mplog.ConcurrentRotatingFileHandler):
    """Keeps its reports (message and error) instead of printing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reports: list[str] = []
        super().__init__(*args, **kwargs)

    def handleError(self, record: logging.LogRecord) -> None:
        self.reports.append(f"{record.getMessage()} [{type(sys.exc_info()[1]).__name__}]")


def sweep(log: str, rotations: int) -> dict[str, Any]:
    """Rotate *rotations* times with gzip, then close (which sweeps once more)."""
    handler = _Handler(log, maxBytes=RECORD, backupCount=10, compress="gzip", compress_delay=0)
    for number in range(rotations + 1):
        handler.emit(_record(number))
    handler.close()
    return {"reports": handler.reports, "names": sorted(os.listdir(os.path.dirname(log)))}


def crowd(log: str, worker: int, records: int) -> dict[str, Any]:
    """One of several users on one log: group-writable files (chmod=0o666), rotation
    every four records, gzip at once; log *records* records tagged *worker*, close."""
    handler = _Handler(
        log,
        maxBytes=4 * RECORD,
        backupCount=100_000,
        compress="gzip",
        compress_delay=0,
        chmod=0o666,
    )
    for number in range(records):
        text = f"w{worker} {number:06d} ".ljust(RECORD - 1, "x")
        handler.emit(logging.makeLogRecord({"msg": text}))
    handler.close()
    return {"reports": handler.reports}


def settle(log: str) -> dict[str, Any]:
    """*log* exists with mode 0o400, as another process's file is between its creation
    and its chmod; the process sets the requested 0o666 the next time we wait.  Construct
    a handler with chmod=0o666 and log one record.  Then the same with an old file that
    stays 0o400 (a misconfiguration): refused at once, without a wait."""
    with open(log, "w", encoding="utf-8"):
        pass
    os.chmod(log, 0o400)
    waits = []

    class _Time:
        time = staticmethod(time.time)

        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)
            os.chmod(log, 0o666)  # what the creating process does meanwhile

    mplog._permissions.time = _Time  # type: ignore[assignment]
    handler = _Handler(log, chmod=0o666)
    handler.emit(_record(0))
    handler.close()
    result: dict[str, Any] = {"reports": handler.reports, "waits": len(waits)}
    old = os.path.join(os.path.dirname(log), "old.log")
    with open(old, "w", encoding="utf-8"):
        pass
    os.chmod(old, 0o400)
    _Time.time = staticmethod(lambda: time.time() + 60)  # type: ignore[method-assign]  # a minute on
    waits.clear()
    try:
        _Handler(old, chmod=0o666).close()
        result["old"] = "opened"
    except PermissionError:
        result["old"] = "refused"
    result["old_waits"] = len(waits)
    return result


def log_to_device(path: str, records: int) -> dict[str, Any]:
    """Construct a handler on the device *path*, log, close."""
    handler = _Handler(path, maxBytes=RECORD, backupCount=2)
    for number in range(records):
        handler.emit(_record(number))
    handler.close()
    return {"reports": handler.reports}


def write_pipe(path: str, worker: int, records: int, size: int) -> dict[str, Any]:
    """Log *records* records of *size* bytes, each one letter repeated, to the pipe *path*."""
    handler = _Handler(path)
    for number in range(records):
        head = f"w{worker} r{number:04d} "
        letter = "abcdefghijklmnopqrstuvwxyz"[(worker + number) % 26]
        handler.emit(logging.makeLogRecord({"msg": head + letter * (size - len(head) - 1)}))
    handler.close()
    return {"reports": handler.reports}


def hold_every_lock(path: str, top: str) -> None:
    """Construct a handler on the device *path* (and say whether that worked), then
    flock every lock file under *top* this user can open, say how many, and hold them
    until killed."""
    try:
        log_to_device(path, 1)
        constructed = "ok"
    except OSError as error:
        constructed = f"{type(error).__name__}: {error}"
    held = []
    for folder, _dirs, files in os.walk(top):
        for name in files:
            if name.endswith(".lock"):
                try:
                    fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue
                held.append(fd)
    print(json.dumps({"constructed": constructed, "held": len(held)}), flush=True)
    time.sleep(600)


def swapping_compressor(kind: str, victim: str, other_uid: int) -> Any:
    """A callable compressor (``.gz2``) that writes its output, and then, as someone who
    can write the log directory would, swaps it for *kind*: a symbolic link or a hard
    link to *victim*, a FIFO, or a file of user *other_uid*."""

    def compress(path: str) -> str:
        output = path + ".gz2"
        with open(path, "rb") as source, gzip.open(output, "wb") as target:
            shutil.copyfileobj(source, target)
        if kind == "foreign":
            os.chown(output, other_uid, other_uid)
            return output
        os.remove(output)
        if kind == "symlink":
            os.symlink(victim, output)
        elif kind == "hardlink":
            os.link(victim, output)
        else:
            os.mkfifo(output)
        return output

    compress.suffix = ".gz2"  # type: ignore[attr-defined]
    return compress


def swapped_output(log: str, kind: str, victim: str, other_uid: int) -> dict[str, Any]:
    """Rotate three times with the swapping compressor (and ``owner=`` of *other_uid*
    if we are root), then close."""
    owner = (other_uid, other_uid) if os.geteuid() == 0 else None
    handler = _Handler(
        log,
        maxBytes=RECORD,
        backupCount=10,
        compress=swapping_compressor(kind, victim, other_uid),
        compress_delay=0,
        owner=owner,
    )
    for number in range(4):
        handler.emit(_record(number))
    handler.close()
    return {"reports": handler.reports, "names": sorted(os.listdir(os.path.dirname(log)))}


def main() -> None:
    uid, command, arguments = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    _drop_to(uid)
    if command == "hold_every_lock":
        hold_every_lock(**arguments)
        return
    functions = {
        "sweep": sweep,
        "crowd": crowd,
        "settle": settle,
        "log_to_device": log_to_device,
        "swapped_output": swapped_output,
        "write_pipe": write_pipe,
    }
    print(json.dumps(functions[command](**arguments)), flush=True)


if __name__ == "__main__":
    main()
