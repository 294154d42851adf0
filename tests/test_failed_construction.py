"""A handler whose construction fails (the log is a directory, its directory is a file,
the lock is held past ``lock_timeout``, the lock file serves another log) raises and
keeps nothing: no descriptor, no thread, no fork or exit hook.  A program that retries
a bad configuration in a loop, or a test suite that builds many, does not run out of
descriptors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")

_FAIL_REPEATEDLY = textwrap.dedent(
    """
    import gc, json, os, sys, threading
    import mplog
    import mplog._lock
    from mplog import _lifecycle as lifecycle

    case, folder = sys.argv[1], sys.argv[2]
    kwargs = {}
    kept = []  # handlers this script keeps: the tracked count ignores them
    if case == "log-is-a-directory":
        path = os.path.join(folder, "app.log")
        os.mkdir(path)
        kwargs["lock_file_directory"] = os.path.join(folder, "locks")
    elif case == "directory-is-a-file":
        open(os.path.join(folder, "file"), "w").close()
        path = os.path.join(folder, "file", "app.log")
        kwargs["lock_file_directory"] = os.path.join(folder, "locks")
    elif case == "lock-held":
        path = os.path.join(folder, "app.log")
        kwargs["lock_timeout"] = 0
        # Another process's lock: a description of its own, which excludes ours (the
        # handlers of one log in one process share theirs).
        holder = mplog._lock.InterProcessLock(os.path.join(folder, ".__app.lock"))
        holder.acquire()
    elif case == "lock-file-of-another-log":
        kwargs["lock_file_directory"] = os.path.join(folder, "locks")
        other = os.path.join(folder, "a", "app.log")
        kept.append(mplog.ConcurrentRotatingFileHandler(other, **kwargs))
        path = os.path.join(folder, "b", "app.log")

    def attempt(**options):
        try:
            mplog.ConcurrentRotatingFileHandler(path, **options, **kwargs)
        except (OSError, ValueError) as error:
            return type(error).__name__
        raise SystemExit("constructed")

    attempt()  # the first one imports and caches what any later one needs
    gc.collect()
    fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    kinds = {
        attempt(batched=b, compress=c, fsync=f)
        for b in (False, True) for c in (None, "gzip") for f in (False, 0.5)
    }
    kinds |= {attempt(batched=b) for _ in range(50) for b in (False, True)}
    gc.collect()
    print(json.dumps({
        "kinds": sorted(kinds),
        "fds": len(os.listdir("/proc/self/fd")) - fds,
        "threads": threading.active_count() - threads,
        "tracked": len(lifecycle._live) - len(kept),
    }))
    """
)


def _run(case: str, folder: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _FAIL_REPEATEDLY, case, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("log-is-a-directory", "IsADirectoryError"),
        ("directory-is-a-file", "FileExistsError"),
        ("lock-held", "LockTimeout"),
        ("lock-file-of-another-log", "LockFileConflict"),
    ],
)
def test_a_failed_construction_keeps_nothing(tmp_path: Path, case: str, kind: str) -> None:
    """108 constructions that fail (sync and batched, with and without compression and
    group commit) leave the process with as many descriptors and threads as before,
    and no handler registered for fork."""
    result = _run(case, tmp_path)
    assert result == {"kinds": [kind], "fds": 0, "threads": 0, "tracked": 0}
