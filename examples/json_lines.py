"""JSON lines through mplog: one JSON object per line, from several processes.

    python examples/json_lines.py

The formatter is a dozen lines of the standard library, no extra dependency.
``json.dumps`` escapes newlines, so a multi-line message or a traceback stays
on one line, and every line of every file parses on its own (``jq``, log
shippers, ``json.loads``).
"""

from __future__ import annotations

import datetime
import json
import logging
import multiprocessing
import os

import mplog

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

WORKERS = 3
RECORDS = 400  # per worker

# The attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, pid, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(
                record.created, datetime.timezone.utc
            ).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging() -> None:
    """Run at the start of every process (parent and workers)."""
    handler = mplog.setup_logging(
        os.path.join(LOG_DIR, "json_lines.jsonl"), max_bytes="64 KB", backup_count=50
    )
    handler.setFormatter(JsonFormatter())


def worker(number: int) -> None:
    configure_logging()
    log = logging.getLogger("json_lines.worker")
    for seq in range(RECORDS):
        # Fields passed with extra= become keys of the JSON object.
        log.info(
            "record %d\nwith a second line, ünïcödé", seq, extra={"worker": number, "seq": seq}
        )
    try:
        int("not a number")
    except ValueError:
        log.exception("worker %d: a traceback, still one line", number, extra={"worker": number})


def main() -> None:
    configure_logging()
    logging.getLogger("json_lines").info("starting %d workers", WORKERS)
    processes = [multiprocessing.Process(target=worker, args=(n,)) for n in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    logging.getLogger("json_lines").info(
        "done", extra={"exitcodes": [p.exitcode for p in processes]}
    )
    print(f"logs in {LOG_DIR}")


if __name__ == "__main__":
    main()
