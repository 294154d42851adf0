"""concurrent.futures.ProcessPoolExecutor with ``spawn`` workers logging into one file.

    python examples/process_pool_spawn.py

A spawned worker is a fresh interpreter: nothing of the parent's ``logging``
setup reaches it.  ``initializer=mplog.worker_initializer()`` replays the
parent's ``mplog.setup_logging(...)`` call in every worker before its first task.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import mplog

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

TASKS = 300
log = logging.getLogger("process_pool_spawn")


def square(n: int) -> int:
    """A task: runs in a worker, which logs with the replayed configuration."""
    log.info("square(%d) = %d", n, n * n)
    return n * n


def main() -> None:
    mplog.setup_logging(os.path.join(LOG_DIR, "process_pool_spawn.log"), max_bytes="1 MB")
    log.info("parent: starting %d tasks", TASKS)
    with ProcessPoolExecutor(
        max_workers=3,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=mplog.worker_initializer(),  # call after setup_logging()
    ) as executor:
        total = sum(executor.map(square, range(TASKS), chunksize=10))
    log.info("parent: sum of squares = %d", total)
    print(f"sum of squares: {total}; logs in {LOG_DIR}")


if __name__ == "__main__":  # required with spawn: workers import this module
    main()
