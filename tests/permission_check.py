"""Run by test_permissions.py in a subprocess: open logs in a directory this user cannot write.

Drops root privileges first (root bypasses permission bits), then reports as
JSON what it could do and the errors mplog raised.
"""

from __future__ import annotations

import json
import os
import pwd
import sys

import mplog
import mplog._handler  # mplog imports it lazily: here, before dropping root, who can read it


def _drop_root() -> None:
    if os.geteuid() == 0:
        try:
            uid, gid = pwd.getpwnam("nobody")[2:4]
        except KeyError:
            uid = gid = 65534
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)


def _error(**kwargs: object) -> dict[str, object]:
    try:
        mplog.ConcurrentRotatingFileHandler(**kwargs).close()  # type: ignore[arg-type]
    except OSError as error:
        return {"type": type(error).__name__, "message": str(error)}
    return {"type": None, "message": ""}


def main(directory: str, writable: str) -> None:
    _drop_root()
    log = os.path.join(directory, "app.log")
    with open(log, "a", encoding="utf-8"):
        pass  # the log file itself is writable
    report = {
        "uid": os.geteuid(),
        "log_writable": os.access(log, os.W_OK),
        "dir_writable": os.access(directory, os.W_OK),
        "in_dir": _error(filename=log),
        "missing_parent": _error(filename=os.path.join(directory, "sub", "app.log")),
        "with_lock_dir": _error(filename=log, lock_file_directory=writable),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
