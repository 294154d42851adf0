"""Child-process entry points for test_compression_faults.py: processes whose compression
of rotated files can be made to stall at a chosen point, so the test can SIGKILL them
there, or keep them stalled while other processes log.

A stalling child is configured with a *control directory*; the files in it are the
protocol between the test and the child:

* ``hold``: while it exists, a stall point blocks (the test removes it to release);
* ``started.<pid>.<n>``: written by the child when its n-th stall point is reached,
  holding the path being compressed and its inode (``path\\ninode\\n``);
* ``finished.<pid>.<n>``: written when that compression went on past its stall point.

Files, not Events: a stalled thread must not hold a lock that the SIGKILL could leave
held, and the test must be able to release a child it is not talking to.

Records use mp_workers' framing (length and crc32 per record).
"""

from __future__ import annotations

import gzip
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

import mp_workers
import mplog._compress_backup
import mplog._compressors
from helpers import RecordingHandler

STALL_LIMIT = 90.0  # seconds a stall waits for the test before the child gives up
TEMP_MARK = ".mplog-"  # in the name of every temporary file of a compression

# Set in a child by configure(); empty in the test process, where nothing stalls.
CONTROL: dict[str, str] = {}
_calls = [0]
_calls_lock = threading.Lock()


def configure(control_dir: str) -> None:
    CONTROL["dir"] = control_dir


def _control(name: str) -> str:
    return os.path.join(CONTROL["dir"], name)


def _mark(name: str, text: str) -> None:
    """Publish a marker file atomically (the test never sees it half-written)."""
    temp = _control(f"{name}.partial")
    with open(temp, "w") as f:
        f.write(text)
    os.rename(temp, _control(name))


def held() -> bool:
    return bool(CONTROL) and os.path.exists(_control("hold"))


def _stall(path: str, inode: int) -> str:
    """Announce the stall point (``started.<pid>.<n>``), wait while ``hold`` exists; return
    the marker's name, for :func:`_finished`.  Bounded, so an orphan never lingers."""
    with _calls_lock:
        _calls[0] += 1
        name = f"{os.getpid()}.{_calls[0]}"
    _mark(f"started.{name}", f"{path}\n{inode}\n")
    deadline = time.monotonic() + STALL_LIMIT
    while held():
        if time.monotonic() > deadline:
            os._exit(3)
        time.sleep(0.002)
    return name


def _finished(name: str, path: str) -> None:
    _mark(f"finished.{name}", path)


# -- compressors that stall -------------------------------------------------------------


def blocking_gzip(path: str) -> str:
    """A callable compressor (gzip format, ``.gz``): writes half its output, then stalls
    while ``hold`` exists, then writes the rest.  Leaves its input in place."""
    output = path + ".gz"
    with open(path, "rb") as source:
        data = source.read()
    inode = os.stat(path).st_ino
    packed = gzip.compress(data, compresslevel=6, mtime=0)
    with open(output, "wb") as out:
        out.write(packed[: len(packed) // 2])
        out.flush()
        name = _stall(path, inode) if held() else ""
        out.write(packed[len(packed) // 2 :])
    if name:
        _finished(name, path)
    return output


blocking_gzip.suffix = ".gz"  # type: ignore[attr-defined]


class _StallingOs:
    """Stands in for ``os`` inside one mplog module, with some functions replaced."""

    def __init__(self, **replaced: Any) -> None:
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _stall_mid_stream(fd: int, position: int) -> str:
    """A built-in codec reads the backup: stall once it is past the first chunk, so the
    temporary file already holds part of the compressed stream."""
    if position > 0 and held():
        return _stall(f"/proc/self/fd/{fd}", os.fstat(fd).st_ino)
    return ""


def _stalling_pread(fd: int, size: int, offset: int) -> bytes:
    name = _stall_mid_stream(fd, offset)
    data = os.pread(fd, size, offset)
    if name:
        _finished(name, "")
    return data


def _stalling_read(fd: int, size: int) -> bytes:
    name = _stall_mid_stream(fd, os.lseek(fd, 0, os.SEEK_CUR))
    data = os.read(fd, size)
    if name:
        _finished(name, "")
    return data


def _stalling_rename(source: str, dest: str) -> None:
    """The commit's rename of a finished temporary file to its final name: do it, then
    stall (the writers' lock held, the original not yet removed)."""
    os.rename(source, dest)
    if TEMP_MARK in os.path.basename(source) and held():
        _stall(dest, os.stat(dest).st_ino)


def _stalling_aside(source: str, dest: str) -> None:
    """The commit's rename of the compressed original to a temporary name: do it, then
    stall (the archive has its name; the original is set aside, not yet removed)."""
    os.rename(source, dest)
    if TEMP_MARK in os.path.basename(dest) and held():
        _stall(dest, os.stat(dest).st_ino)


STALLS = {
    None: None,
    "callable": None,  # the handler gets compress=blocking_gzip
    # mid-stream, built-in codec (whichever way it reads the backup)
    "read": (mplog._compressors, {"pread": _stalling_pread, "read": _stalling_read}),
    "commit": (mplog._compress_backup, {"rename": _stalling_rename}),  # between the two renames
    # the original set aside, not removed
    "aside": (mplog._compress_backup, {"rename": _stalling_aside}),
}


def install_stall(stall: str | None) -> None:
    """In this (child) process only: make the compression stall at *stall* while ``hold``."""
    how = STALLS[stall]
    if how is not None:
        module, replacements = how
        module.os = _StallingOs(**replacements)  # type: ignore[attr-defined]


# -- process entry points ---------------------------------------------------------------


def controlled_worker(
    path: str,
    handler_kwargs: dict[str, Any],
    worker: int,
    control_dir: str,
    stall: str | None,
    conn: Any,
    barrier: Any,
) -> None:
    """A logging process driven over *conn*, each command answered ``("ok", value)`` or
    ``("error", traceback)``:

    * ``("log", first, count)``: log records ``first .. first+count-1`` of *worker*;
    * ``("close",)``: close the handler (waits for its compression), then exit; answers
      what the handler passed to handleError (reprs).

    Its compression stalls at *stall* (see :data:`STALLS`) while ``hold`` exists in
    *control_dir*.  Killed by the test while idle or stalled.
    """
    configure(control_dir)
    install_stall(stall)
    handler = RecordingHandler(path, **handler_kwargs)
    handler.setFormatter(mp_workers.FramedFormatter())
    logger = logging.getLogger(f"mplog.tests.c{worker}")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    barrier.wait(60)
    try:
        while True:
            if not conn.poll(STALL_LIMIT):
                raise TimeoutError("the test sent no command")
            command, *args = conn.recv()
            if command == "log":
                first, count = args
                for seq in range(first, first + count):
                    mp_workers.emit(logger, worker, seq, "small", 60)
                conn.send(("ok", None))
            elif command == "close":
                mp_workers.close_logger(logger)
                conn.send(("ok", [repr(error) for error in handler.errors_seen]))
                return
            else:
                raise ValueError(f"unknown command {command!r}")
    except BaseException:
        conn.send(("error", "".join(traceback.format_exception(*sys.exc_info()))))
        raise


def framed_record(worker: int, seq: int, payload_size: int = 60) -> bytes:
    """The bytes a handler with mp_workers' FramedFormatter writes for record (worker, seq)."""
    record = logging.makeLogRecord({"msg": mp_workers.message(worker, seq, "small", payload_size)})
    return (mp_workers.FramedFormatter().format(record) + "\n").encode("utf-8")
