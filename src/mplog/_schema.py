"""Checking a dictConfig dict before it is applied, and explaining dictConfig's own errors.

Bare :func:`logging.config.dictConfig` ignores keys it does not know: ``roots:``
instead of ``root:`` or ``levle: INFO`` configure nothing, silently.
:func:`check_config` refuses unknown keys at the top level, in ``root``, in
``loggers``, ``handlers``, ``formatters`` and ``filters``, names the file and
the key path, and suggests the key that was probably meant.  Handler entries
pass their other keys to the handler class as keyword arguments, so those are
checked against the class's signature when it can be imported (mplog's
handlers: against their documented options).

The handlers check their own keywords too (:func:`check_handler_keywords`, from
``__new__``), so a misspelled option built directly, by bare ``dictConfig`` or by
``fileConfig`` fails with the same suggestion; :class:`InitSignature` keeps
:func:`inspect.signature` and :func:`help` showing ``__init__``'s parameters.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "InitSignature",
    "check_config",
    "check_handler_keywords",
    "check_keywords",
    "explain_dict_config_error",
    "handler_options",
]

TOP_LEVEL = (
    "version",
    "formatters",
    "filters",
    "handlers",
    "loggers",
    "root",
    "incremental",
    "disable_existing_loggers",
)
ROOT = ("level", "handlers", "filters")
LOGGER = ("level", "handlers", "filters", "propagate")
FORMATTER = ("format", "datefmt", "style", "validate", "defaults", "class")
FILTER = ("name",)
HANDLER = ("class", "level", "formatter", "filters", "()", ".")
_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


def suggestion(key: str, known: Iterable[str]) -> str:
    """``"; did you mean 'root'?"`` for the known name closest to *key*, or ``""``.

    Spellings that differ only in case and underscores (``max_bytes`` and
    ``maxBytes``) are matched first, then :func:`difflib.get_close_matches`.
    """
    import difflib  # only when there is a mistake to explain

    known = list(known)
    folded = {name.lower().replace("_", ""): name for name in known}
    match = folded.get(key.lower().replace("_", ""))
    if match is None:
        close = difflib.get_close_matches(key, known, 1, 0.6)
        match = close[0] if close else None
    return f"; did you mean {match!r}?" if match is not None else ""


def check_keywords(
    given: Iterable[str],
    known: Iterable[str],
    where: str,
    what: str,
    hint: str = "",
    noun: str = "key",
) -> None:
    """Raise ``ValueError`` for the first of *given* not in *known*, with a suggestion.

    :param where: the prefix of the message: the file, then the key path of
        the entry (``"logging.yaml: handlers.file"``), to which the key is added.
    :param what: what the keys are, for the message (``"a key of root"``).
    :param hint: appended when nothing close was found (e.g. the known keys).
    :param noun: ``"key"`` (of a config) or ``"keyword"`` (of a call).
    """
    known = list(known)
    for key in given:
        if key not in known:
            found = suggestion(str(key), known)
            path = f"{where}.{key}" if ": " in where else f"{where}: {key}"
            raise ValueError(f"{path}: unknown {noun}, not {what}{found or hint}")


class InitSignature:
    """The ``__signature__`` of a class whose ``__new__`` takes ``(*args, **kwargs)``:
    :func:`inspect.signature` (``help()``, IDEs, config checkers) would report
    ``__new__``'s; this reports the class's ``__init__``'s, for subclasses too.

    .. versionadded:: 0.1
    """

    def __get__(self, instance: object, owner: type) -> inspect.Signature | None:
        if instance is not None:
            return None  # an instance is not callable: nothing to describe
        init = owner.__init__  # type: ignore[misc]  # looked up on the class itself
        signature = inspect.signature(init)
        return signature.replace(parameters=list(signature.parameters.values())[1:])


_KEYWORDS: dict[type, frozenset[str]] = {}


def check_handler_keywords(cls: type, given: Iterable[str], base: type) -> None:
    """Raise ``TypeError`` for the first of *given* that *cls* does not take, with the
    keyword that was probably meant (as ``"did you mean 'compress'?"``).

    Called by the ``__new__`` of *base* (an mplog handler), before Python binds the
    arguments to ``__init__`` and raises its bare ``unexpected keyword argument``.
    Checks only when every ``__init__`` between *cls* and *base* is mplog's own: a
    subclass's ``__init__`` may consume keywords of its own from ``**kwargs``.

    .. versionadded:: 0.1
    """
    known = _KEYWORDS.get(cls)
    if known is None:
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            if klass.__module__ != base.__module__:
                return  # somebody else's __init__: leave its keywords to it
            parameters = inspect.signature(init).parameters.values()
            names.update(p.name for p in parameters if p.kind in _BY_NAME)
            if klass is base or not any(p.kind == p.VAR_KEYWORD for p in parameters):
                break
        known = _KEYWORDS[cls] = frozenset(names - {"self"})
    for key in given:
        if key not in known:
            raise TypeError(
                f"{cls.__name__}() got an unexpected keyword argument {key!r}"
                + (
                    suggestion(key, sorted(known))
                    or "; see help(mplog.ConcurrentRotatingFileHandler)"
                )
            )


_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def handler_options() -> list[str]:
    """Every keyword argument of mplog's handlers (both classes), in signature order."""
    from ._handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler

    names: dict[str, None] = {}
    for cls in (ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler):
        for parameter in inspect.signature(cls).parameters.values():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names[parameter.name] = None
    return list(names)


def check_config(settings: Mapping[str, Any], where: str) -> None:
    """Refuse unknown keys and dangling references in a dictConfig dict.

    :param where: the config file (or ``"config"`` for a dict), quoted in errors.
    :raises ValueError: naming *where*, the key path and a suggestion.
    """
    _keys(settings, TOP_LEVEL, where, "a top-level key of a logging config")
    if settings.get("incremental"):
        return  # entries then only set levels of what exists: dictConfig checks them
    sections = {name: _section(settings, name, where) for name in _SECTIONS}
    for name, entry in sections["formatters"].items():
        if "()" not in entry:  # a factory takes any keyword arguments
            _keys(entry, FORMATTER, f"{where}: formatters.{name}", "a key of a formatter")
    for name, entry in sections["filters"].items():
        if "()" not in entry:
            _keys(entry, FILTER, f"{where}: filters.{name}", "a key of a filter")
    for name, entry in sections["handlers"].items():
        _check_handler(entry, f"{where}: handlers.{name}", sections)
    for name, entry in sections["loggers"].items():
        _check_logger(entry, LOGGER, f"{where}: loggers.{name}", sections)
    if "root" in settings:
        root = settings["root"]
        if not isinstance(root, Mapping):
            raise ValueError(f"{where}: root: expected a mapping, got {root!r}")
        _check_logger(root, ROOT, f"{where}: root", sections)


_SECTIONS = ("formatters", "filters", "handlers", "loggers")


def _section(settings: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    section = settings.get(name) or {}
    if not isinstance(section, Mapping):
        raise ValueError(f"{where}: {name}: expected a mapping of names to entries")
    for entry_name, entry in section.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: {name}.{entry_name}: expected a mapping, got {entry!r}")
    return section


def _keys(entry: Mapping[str, Any], known: Iterable[str], where: str, what: str) -> None:
    known = list(known)
    check_keywords(entry, known, where, what, "; expected one of: " + ", ".join(known))


def _check_logger(
    entry: Mapping[str, Any],
    known: Iterable[str],
    where: str,
    sections: Mapping[str, Mapping[str, Any]],
) -> None:
    _keys(entry, known, where, "a key of root" if where.endswith(": root") else "a key of a logger")
    _check_level(entry, where)
    _check_references(entry, "handlers", where, sections)
    _check_references(entry, "filters", where, sections)


def _check_handler(
    entry: Mapping[str, Any], where: str, sections: Mapping[str, Mapping[str, Any]]
) -> None:
    if "class" not in entry and "()" not in entry:
        raise ValueError(
            f"{where}: no 'class' (the handler class, e.g. mplog.ConcurrentRotatingFileHandler)"
        )
    _check_level(entry, where)
    _check_references(entry, "filters", where, sections)
    formatter = entry.get("formatter")
    if isinstance(formatter, str) and formatter not in sections["formatters"]:
        raise ValueError(
            f"{where}.formatter: no formatter named {formatter!r} under formatters"
            + suggestion(formatter, sections["formatters"])
        )
    options = _handler_keywords(entry.get("()", entry.get("class")))
    if options is None:  # not importable here, or it takes **kwargs: dictConfig decides
        return
    target = entry.get("class") or "the factory"
    what = f"a dictConfig key ({', '.join(HANDLER)}) nor a keyword of {target}"
    check_keywords(entry, [*HANDLER, *options], where, what)


def _handler_keywords(target: Any) -> list[str] | None:
    """The keyword arguments *target* (a class, factory or dotted name) accepts, or None."""
    if isinstance(target, str):
        import logging.config

        try:
            target = logging.config.BaseConfigurator({}).resolve(target)
        except Exception:  # dictConfig reports a bad class itself, with our key path
            return None
    from ._handler import ConcurrentRotatingFileHandler

    if isinstance(target, type) and issubclass(target, ConcurrentRotatingFileHandler):
        return handler_options()
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind != p.VAR_POSITIONAL]


def _check_level(entry: Mapping[str, Any], where: str) -> None:
    level = entry.get("level")
    if isinstance(level, str) and not isinstance(logging.getLevelName(level), int):
        raise ValueError(
            f"{where}.level: unknown level {level!r}{suggestion(level.upper(), _LEVELS)}"
            f" (levels: {', '.join(_LEVELS)}, or a number)"
        )


def _check_references(
    entry: Mapping[str, Any], key: str, where: str, sections: Mapping[str, Mapping[str, Any]]
) -> None:
    names = entry.get(key)
    if names is None:
        return
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise ValueError(
            f"{where}.{key}: expected a list of names, such as [{names}], got {names!r}"
        )
    for name in names:
        if isinstance(name, str) and name not in sections[key]:
            raise ValueError(
                f"{where}.{key}: no {key[:-1]} named {name!r} under {key}"
                + suggestion(name, sections[key])
            )


_DICT_CONFIG_ERROR = re.compile(r"Unable to configure (formatter|filter|handler|logger) '(.+)'")


def explain_dict_config_error(error: BaseException, where: str) -> str:
    """*error* from dictConfig, prefixed with *where* and the key path, with its cause."""
    message = str(error)
    match = _DICT_CONFIG_ERROR.match(message)
    if match:
        path = f"{match[1]}s.{match[2]}"
    elif message.startswith("Unable to configure root logger"):
        path = "root"
    else:
        path = ""
    cause = f": {error.__cause__}" if error.__cause__ else ""
    return f"{where}: {path + ': ' if path else ''}{message}{cause}"
