"""Configure once at process start: :func:`setup_logging` and config files.

``setup_logging()`` builds the mplog handler and installs it on the root logger
through :func:`logging.basicConfig`; ``setup_logging(config=...)`` applies a
YAML, JSON or TOML file (or a dict) with :func:`logging.config.dictConfig`.
:func:`worker_initializer` gives ``multiprocessing.Pool`` and
``ProcessPoolExecutor`` workers the same configuration under every start method.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.config
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Union

from ._compressors import CompressLike
from ._handler import ConcurrentRotatingFileHandler
from ._options import PathLike, log_path
from ._placeholders import expand_placeholders
from ._schema import check_config, check_keywords, explain_dict_config_error
from ._schema import handler_options as handler_options_of_mplog
from ._units import DurationLike, SizeLike, parse_size

__all__ = ["DEFAULT_FORMAT", "WorkerInitializer", "setup_logging", "worker_initializer"]

DEFAULT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
DEFAULT_BACKUP_COUNT = 5

ConfigLike = Union[PathLike, dict[str, Any]]

# The arguments of the last setup_logging() call in this process, replayed by
# worker_initializer() in pool workers.
_last_setup: dict[str, Any] | None = None


def setup_logging(
    filename: PathLike | None = None,
    *,
    level: int | str = "INFO",
    format: str = DEFAULT_FORMAT,  # the name logging.basicConfig uses
    datefmt: str | None = None,
    max_bytes: SizeLike | None = None,
    backup_count: int | None = None,
    when: str | DurationLike | None = None,
    interval: int = 1,
    utc: bool = False,
    compress: CompressLike = None,
    console: bool = False,
    config: ConfigLike | None = None,
    force: bool = True,
    **handler_options: Any,
) -> ConcurrentRotatingFileHandler | None:
    """Log every record of this process into *filename*, safely shared with other processes.

    Call it once at process start (and in each worker: see :func:`worker_initializer`);
    then use ``logging.getLogger(__name__)`` as usual.

    :param filename: the log file; its directory is created if missing.
        ``{hostname}`` in it is replaced by this host's name, so one
        configuration serves every host.  A name ending like a configuration
        file (``.yaml``, ``.json``...: that is ``config=``) or in ``/`` is refused
        (see :func:`mplog._options.log_path`).
    :param level: root logger level: a name in any case (``"info"``) or a number.
    :param format: record format, as for :func:`logging.basicConfig`.
    :param datefmt: ``asctime`` format.
    :param max_bytes: rotate by size: ``10_000_000`` or ``"10 MB"``.  The
        handler's spelling ``maxBytes`` is accepted too, with the same meaning.
    :param backup_count: rotated files to keep; defaults to
        ``DEFAULT_BACKUP_COUNT`` (5) when rotation is on.  ``backupCount`` is
        accepted too; giving both spellings of one option is an error.
    :param when: rotate by time: a stdlib *when* (``"midnight"``, ``"H"``,
        ``"W0"``...) or a duration (``"1 day"``, ``"6 hours"``, a timedelta);
        whole days rotate at midnight.
    :param interval: multiplier of a stdlib *when*.
    :param utc: use UTC for time rotation and file names.
    :param compress: compress rotated files in the background: ``"gzip"``,
        ``"bz2"``, ``"xz"``, ``"zstd"`` or a callable (see the handler).
        Retention: ``max_age="7 days"``, ``max_total_size="1 GB"`` (handler options).
    :param console: also log to standard error.
    :param config: instead of the arguments above, a dictConfig dict or the path
        of a ``.yaml``/``.yml`` (needs ``mplog[yaml]``), ``.json`` or ``.toml``
        file.  ``$VARS`` and ``{hostname}`` in ``filename`` entries are expanded
        and relative ones resolve against the file's directory;
        ``disable_existing_loggers`` defaults to False.
    :param force: replace (and close) the root logger's existing handlers, so
        calling this twice never duplicates records or leaks files.
    :param handler_options: any other keyword of
        :class:`~mplog.ConcurrentRotatingFileHandler` (``lock_timeout``, ``chmod``...).
    :returns: the mplog handler installed on the root logger, if any.
    :raises ValueError: a bad value, named in the message, or an unknown keyword
        (with the option that was probably meant).

    .. versionadded:: 0.1
    """
    global _last_setup  # noqa: PLW0603 - replayed in pool workers
    if config is not None:
        if filename is not None:
            raise ValueError("give either filename= or config=, not both")
        settings = load_config(config)
        _apply_dict_config(settings, config)
        _last_setup = {"config": settings}
        return _root_mplog_handler()
    if filename is None:
        raise ValueError("setup_logging() needs a filename (or config=)")
    _check_level(level)
    if isinstance(level, str):
        level = level.upper()  # "info", as config files and logging.getLevelName() allow
    handler_options = dict(handler_options)
    max_bytes = _alias(max_bytes, "max_bytes", handler_options, "maxBytes")
    backup_count = _alias(backup_count, "backup_count", handler_options, "backupCount")
    check_keywords(
        handler_options,
        [*_OWN_OPTIONS, *handler_options_of_mplog()],
        "setup_logging()",
        "an option of setup_logging() or of mplog.ConcurrentRotatingFileHandler",
        noun="keyword",
    )
    path = log_path(filename)
    rotation: dict[str, Any] = dict(handler_options)
    if when is not None:
        rotation.update(when=when, interval=interval)
    if compress is not None:
        rotation["compress"] = compress
    if max_bytes is not None:
        rotation["maxBytes"] = parse_size(max_bytes, "max_bytes")
    if max_bytes is not None or when is not None:
        rotation["backupCount"] = DEFAULT_BACKUP_COUNT if backup_count is None else backup_count
    elif backup_count is not None:
        rotation["backupCount"] = backup_count
    if when is not None:
        rotation["utc"] = utc
    handler = ConcurrentRotatingFileHandler(path, **rotation)
    handlers: list[logging.Handler] = [handler]
    if console:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(handlers=handlers, level=level, format=format, datefmt=datefmt, force=force)
    _last_setup = {
        "filename": path,
        "level": level,
        "format": format,
        "datefmt": datefmt,
        "console": console,
        "force": True,
        "max_bytes": max_bytes,
        "backup_count": backup_count,
        "when": when,
        "interval": interval,
        "utc": utc,
        "compress": compress,
        **handler_options,
    }
    return handler


# setup_logging's own spellings; the handler's maxBytes and backupCount are aliases.
_OWN_OPTIONS = (
    "level",
    "format",
    "datefmt",
    "max_bytes",
    "backup_count",
    "when",
    "interval",
    "utc",
    "compress",
    "console",
    "config",
    "force",
)


def _alias(value: Any, name: str, options: dict[str, Any], alias: str) -> Any:
    """*value*, or the handler's spelling *alias* of it from *options* (removed from them)."""
    if alias not in options:
        return value
    other = options.pop(alias)
    if value is not None:
        raise ValueError(
            f"{name}={value!r} and {alias}={other!r} are the same option; give only one"
        )
    return other


def _check_level(level: int | str) -> None:
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, str))
        or (isinstance(level, str) and not isinstance(logging.getLevelName(level.upper()), int))
    ):
        raise ValueError(f"level={level!r}: expected a level name such as 'INFO' or a number")


def load_config(config: ConfigLike) -> dict[str, Any]:
    """Return the dictConfig dict for *config* (a dict, or a YAML/JSON/TOML path).

    In handler ``filename``\\ s, ``$VARS``, ``~`` and ``{hostname}`` are expanded,
    relative paths are made absolute against the file's directory (the current
    directory for a dict), and missing directories are created.
    ``disable_existing_loggers`` defaults to False: loggers created before the
    call (module-level ``getLogger(__name__)``) keep working.

    :raises ValueError: an unknown key, level or name (see :mod:`mplog._schema`),
        naming the file, the key path and the key that was probably meant.
    """
    if isinstance(config, dict):
        settings, base = copy.deepcopy(config), os.getcwd()
    else:
        path = os.path.abspath(os.fspath(config))
        settings, base = _read_config_file(path), os.path.dirname(path)
    # Unlike bare dictConfig, keep loggers that modules created at import time,
    # before setup_logging() ran: disabling them silently drops their records.
    settings.setdefault("disable_existing_loggers", False)
    check_config(settings, _where(config))  # before creating any directory
    handlers = settings.get("handlers") or {}
    for name, entry in handlers.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), (str, os.PathLike)):
            continue
        filename = os.fspath(entry["filename"])
        if filename.startswith(("ext://", "cfg://")):  # dictConfig resolves those itself
            continue
        filename = expand_placeholders(os.path.expanduser(os.path.expandvars(filename)))
        filename = os.path.join(base, filename)
        entry["filename"] = filename
        try:
            os.makedirs(os.path.dirname(filename), exist_ok=True)
        except OSError as err:
            raise OSError(
                err.errno, f"{config}: handlers.{name}.filename: {err.strerror}", filename
            ) from err
    return settings


def _read_config_file(path: str) -> dict[str, Any]:
    extension = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise OSError(err.errno, f"cannot read logging config: {err.strerror}", path) from err
    try:
        if extension in (".yaml", ".yml"):
            data = _yaml().safe_load(raw)
        elif extension == ".json":
            data = json.loads(raw)
        elif extension == ".toml":
            data = _toml().loads(raw.decode("utf-8"))
        else:
            raise ValueError(
                f"{path}: unknown config format {extension!r}; use .yaml, .json or .toml"
            )
    except ImportError:
        raise
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    except Exception as err:  # the YAML parser's own errors
        raise ValueError(f"{path}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    data.setdefault("version", 1)
    return data


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise ImportError(
            "reading a YAML logging config needs PyYAML: pip install 'mplog[yaml]'"
        ) from None
    return yaml


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:
        raise ImportError(
            "reading a TOML logging config on Python < 3.11 needs tomli: pip install 'mplog[toml]'"
        ) from None
    return tomli


def _where(source: ConfigLike) -> str:
    return "config" if isinstance(source, dict) else os.fspath(source)


def _apply_dict_config(settings: dict[str, Any], source: ConfigLike) -> None:
    try:
        logging.config.dictConfig(settings)
    except (ValueError, TypeError, AttributeError, ImportError) as err:
        raise ValueError(explain_dict_config_error(err, _where(source))) from err


def _root_mplog_handler() -> ConcurrentRotatingFileHandler | None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ConcurrentRotatingFileHandler):
            return handler
    return None


@dataclass(frozen=True)
class WorkerInitializer:
    """A picklable callable that repeats a :func:`setup_logging` call in a worker."""

    settings: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> None:
        setup_logging(**self.settings)


def worker_initializer() -> WorkerInitializer:
    """Return an initializer that gives pool workers this process's mplog setup.

    With ``spawn`` and ``forkserver`` children start with an empty ``logging``;
    pass this to ``multiprocessing.Pool(initializer=...)`` or
    ``ProcessPoolExecutor(initializer=...)`` after :func:`setup_logging`::

        pool = multiprocessing.Pool(4, initializer=mplog.worker_initializer())

    Under ``fork`` it replaces the inherited handler with a fresh one (no duplicates).

    :raises RuntimeError: if :func:`setup_logging` has not been called.

    .. versionadded:: 0.1
    """
    if _last_setup is None:
        raise RuntimeError("call mplog.setup_logging() before mplog.worker_initializer()")
    return WorkerInitializer(copy.deepcopy(_last_setup))
