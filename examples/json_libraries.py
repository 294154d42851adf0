"""JSON lines through mplog with the libraries people already use for JSON logs.

    pip install python-json-logger   # or structlog, or loguru (all three: mplog[json])
    python examples/json_libraries.py python-json-logger
    python examples/json_libraries.py structlog
    python examples/json_libraries.py loguru

mplog is only the handler: it decides where the bytes go (one file, many
processes, rotation); the library decides what a line looks like.

- python-json-logger: a ``logging.Formatter``, set on the mplog handler.
- structlog, with its standard-library integration: structlog's loggers hand
  their event dicts to ``logging``, and ``ProcessorFormatter`` on the mplog
  handler renders them (and plain ``logging`` records) as JSON.
- loguru: the mplog handler is a loguru sink (``logger.add(handler)``);
  ``serialize=True`` makes each message a JSON object.

Each of 3 processes logs 200 records with ``worker`` and ``seq`` fields into
``<library>.jsonl``, rotated at 32 KB.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from typing import Any

import mplog

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

WORKERS = 3
RECORDS = 200  # per worker
LIBRARIES = ("python-json-logger", "structlog", "loguru")


def configure_logging(library: str) -> Any:
    """Run at the start of every process; return what the workers log with."""
    handler = mplog.setup_logging(
        os.path.join(LOG_DIR, f"{library}.jsonl"), max_bytes="32 KB", backup_count=50
    )
    if library == "python-json-logger":
        try:
            from pythonjsonlogger.json import JsonFormatter  # version 3 and later
        except ImportError:
            from pythonjsonlogger.jsonlogger import JsonFormatter  # version 2
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
        )
        return logging.getLogger("json_libraries")
    if library == "structlog":
        import structlog

        shared = [
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso"),
        ]
        structlog.configure(
            processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=structlog.processors.JSONRenderer(), foreign_pre_chain=shared
            )
        )
        return structlog.get_logger("json_libraries")
    if library == "loguru":
        from loguru import logger

        handler.setFormatter(logging.Formatter("%(message)s"))  # loguru made the JSON
        handler.terminator = ""  # and ended it with a newline
        logger.remove()  # loguru's default sink writes to stderr
        logger.add(handler, format="{message}", serialize=True)
        return logger
    raise SystemExit(f"unknown library {library!r}: choose one of {', '.join(LIBRARIES)}")


def info(log: Any, library: str, message: str, **fields: Any) -> None:
    """Log *message* with *fields* as JSON keys, the way each library takes them."""
    if library == "python-json-logger":
        log.info(message, extra=fields)  # a stdlib logger: fields go in extra=
    else:
        log.info(message, **fields)  # structlog and loguru take keyword arguments


def worker(library: str, number: int) -> None:
    log = configure_logging(library)
    for seq in range(RECORDS):
        info(log, library, f"record {seq}", worker=number, seq=seq)


def main(library: str) -> None:
    log = configure_logging(library)
    info(log, library, "starting", workers=WORKERS)
    processes = [multiprocessing.Process(target=worker, args=(library, n)) for n in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    info(log, library, "done", exitcodes=[p.exitcode for p in processes])
    print(f"logs in {os.path.join(LOG_DIR, library + '.jsonl')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "python-json-logger")
