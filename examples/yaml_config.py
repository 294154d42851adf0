"""Configure mplog from a YAML file (logging.yaml), then log from several processes.

    python examples/yaml_config.py      # needs PyYAML: pip install 'mplog[yaml]'

In an application the configuration is one line::

    mplog.setup_logging(config="logging.yaml")

which applies the file with ``logging.config.dictConfig`` (relative ``filename``
entries resolve against the YAML file's directory).  This example reads the
file first only to point its handler into ``LOG_DIR``, like the other examples.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import stat

import yaml

import mplog

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logging.yaml")
TASKS = 500
log = logging.getLogger("yaml_config")


def work(task: int) -> None:
    log.info("task %d done", task)
    logging.getLogger("noisy.library").info("filtered out by the YAML (level WARNING)")


def main() -> None:
    with open(CONFIG, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["handlers"]["file"]["filename"] = os.path.join(LOG_DIR, "app.log")
    handler = mplog.setup_logging(config=config)  # or: setup_logging(config=CONFIG)
    assert handler is not None  # the root logger's mplog handler, from the YAML

    log.info("starting %d tasks", TASKS)
    # worker_initializer() replays the same configuration in each worker.
    with multiprocessing.Pool(3, initializer=mplog.worker_initializer()) as pool:
        pool.map(work, range(TASKS), chunksize=20)
    log.info("all tasks done")

    # What the YAML became, through the handler's stdlib attributes: the size limit,
    # the backups kept, the daily file-name suffix and the next rotation (midnight).
    mode = stat.S_IMODE(os.stat(handler.baseFilename).st_mode)
    next_rotation = datetime.datetime.fromtimestamp(handler.rolloverAt)
    print(
        f"{type(handler).__name__}: maxBytes={handler.maxBytes} "
        f"backupCount={handler.backupCount} suffix={handler.suffix} "
        f"next rotation at {next_rotation:%H:%M:%S} mode={mode:#o}"
    )
    print(f"logs in {LOG_DIR}")


if __name__ == "__main__":
    main()
