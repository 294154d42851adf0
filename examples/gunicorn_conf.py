"""gunicorn settings: the error log, the access log and the application's records go
through mplog, so the master and every worker append safely to the same files.

    gunicorn -c examples/gunicorn_conf.py       # serves examples/app.py on 127.0.0.1:8000

Command-line options override these settings (``--bind``, ``--workers``...).
The master applies ``logconfig_dict`` before it forks the workers, which inherit
the handlers (mplog gives each process its own lock).
"""

import os

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

wsgi_app = "app:app"
pythonpath = os.path.dirname(os.path.abspath(__file__))  # where app.py is
bind = "127.0.0.1:8000"
workers = 3


def _mplog_file(name: str) -> dict:
    """One mplog handler entry: rotate at 10 MB, keep 5 rotated files."""
    return {
        "class": "mplog.ConcurrentRotatingFileHandler",
        "filename": os.path.join(LOG_DIR, name),
        "maxBytes": "10 MB",
        "backupCount": 5,
        "lock_timeout": 10,  # never stall a request for ever on the log lock
    }


# gunicorn applies this with logging.config.dictConfig, in place of its own
# handlers for the gunicorn.error and gunicorn.access loggers.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"},
        # gunicorn formats the access line itself (access_log_format); add the worker pid.
        "access": {"format": "[%(process)d] %(message)s"},
    },
    "handlers": {
        "error_file": {**_mplog_file("gunicorn.error.log"), "formatter": "generic"},
        "access_file": {**_mplog_file("gunicorn.access.log"), "formatter": "access"},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_file"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_file"], "propagate": False},
    },
    # The application's own loggers (logging.getLogger("app")) share the error log.
    "root": {"level": "INFO", "handlers": ["error_file"]},
}
