"""multiprocessing.Pool workers log into one size-rotated file.

    python examples/pool_fork.py

The pool uses the platform's default start method (``fork`` on Linux up to
Python 3.13).  Under ``fork`` the workers inherit the configured handler and
mplog gives each its own lock; ``initializer=mplog.worker_initializer()`` makes
the same code right under ``spawn`` and ``forkserver`` too (macOS, Windows,
Linux from Python 3.14), where workers start with an unconfigured ``logging``.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os

import mplog

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

TASKS = 2000
log = logging.getLogger("pool_fork")


def work(task: int) -> int:
    """A pool task: log one record and return the worker's pid."""
    log.info("task %d done", task)
    return os.getpid()


def main() -> None:
    # Once, in the parent: rotate at 32 kB (small, so this short run rotates a
    # few times) and keep up to 50 rotated files: pool_fork.log.1 is the newest.
    mplog.setup_logging(os.path.join(LOG_DIR, "pool_fork.log"), max_bytes="32 KB", backup_count=50)
    log.info("starting %d tasks", TASKS)
    with multiprocessing.Pool(4, initializer=mplog.worker_initializer()) as pool:
        pids = pool.map(work, range(TASKS), chunksize=25)
    per_worker = collections.Counter(pids)
    log.info("all %d tasks done by %d workers", TASKS, len(per_worker))
    for pid, count in sorted(per_worker.items()):
        print(f"worker {pid}: {count} tasks")
    print(f"logs in {LOG_DIR}")


if __name__ == "__main__":
    main()
