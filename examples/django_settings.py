"""Django settings with a ``LOGGING`` dict that sends everything through mplog.

Copy ``LOGGING`` into your project's settings.py: every process that loads the
settings (``manage.py`` commands, each gunicorn/uvicorn worker, celery workers)
then appends safely to the same django.log.

    python examples/django_settings.py    # demo: Django set up in 3 worker processes
"""

from __future__ import annotations

import logging
import multiprocessing
import os

# Where the logs go: $MPLOG_EXAMPLE_DIR, or ./logs under the current directory.
LOG_DIR = os.environ.get("MPLOG_EXAMPLE_DIR") or os.path.join(os.getcwd(), "logs")

SECRET_KEY = "example-only"  # a real project reads it from the environment
DEBUG = False
INSTALLED_APPS: list[str] = []

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "verbose": {
            "format": "{asctime} {process:d} {levelname} {name}: {message}",
            "style": "{",
        },
    },
    "handlers": {
        "file": {
            "class": "mplog.ConcurrentRotatingFileHandler",
            "filename": os.path.join(LOG_DIR, "django.log"),
            "maxBytes": "10 MB",  # rotate by size; add "when": "midnight" for daily files
            "backupCount": 10,
            "formatter": "verbose",
        },
    },
    # Django's loggers (django, django.request, django.db.backends...) propagate to root.
    "root": {"handlers": ["file"], "level": "INFO"},
    "loggers": {
        "django": {"level": "INFO"},
    },
}


# --- the demo: what `python examples/django_settings.py` runs ---------------------


def setup_django() -> None:
    """What every Django process does at start; django.setup() applies LOGGING."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY=SECRET_KEY, DEBUG=DEBUG, INSTALLED_APPS=INSTALLED_APPS, LOGGING=LOGGING
        )
    django.setup()


def handle(job: int) -> None:
    logging.getLogger("myapp.jobs").info("job %d handled", job)


def main() -> None:
    setup_django()
    log = logging.getLogger("myapp")
    log.info("starting 300 jobs")
    # "spawn" starts fresh interpreters, like independent Django processes.
    context = multiprocessing.get_context("spawn")
    with context.Pool(3, initializer=setup_django) as pool:
        pool.map(handle, range(300), chunksize=10)
    log.info("all jobs handled")
    print(f"logs in {LOG_DIR}")


if __name__ == "__main__":
    main()
