"""Docstrings and PROTOCOL.md name only code that exists.

A rename leaves references behind: _header.py spoke of the handler's `_recover`
long after it had moved into the active file.  This reads, with :mod:`ast`, every
docstring of src/mplog, tests and benchmarks, and the code spans of PROTOCOL.md, and
collects the names that point at code: a Sphinx role (:meth:`SharedState.repair`,
:mod:`mplog._header`); in double backquotes a private name (``_open``), a call
(``emit()``) or a dotted name that starts with ``mplog`` or with a class of mplog
(``SharedState.begin_write``); and a private name in plain prose.  Each must be defined
in src/mplog (a module, a function, a class, a method, an attribute it assigns), be a
builtin or a name the handlers inherit from the stdlib, or, for a docstring outside
src/mplog, be defined in its own file.  Names that start with another module
(``os._exit``, ``logging.Handler.handleError``) are not mplog's to check.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import logging.handlers
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "mplog"

# Names that look like code but are not mplog's, each with its reason.  Keep it short:
# a name that is not here and not defined fails the test.
ALLOWED = {
    "stop",  # logging.handlers.QueueListener.stop, in _bench_contenders' listener
}

_ROLE = re.compile(r":(?:py:)?(meth|func|attr|class|data|exc|mod|obj):`(?:[^`<]*<)?([^`>]+)>?`")
_LITERAL = re.compile(r"``([^`]+)``")
_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# A private name in prose, outside backquotes: "without calling _prepare".
_PROSE = re.compile(r"(?<![\w.`*'\"/-])_[A-Za-z]\w*(?![\w`*'\"/])")
_QUOTED = re.compile(r"``[^`]*``|`[^`]*`")
_NAME = re.compile(r"~?[A-Za-z_][\w.]*(?:\(\))?")


class _Definitions:
    """What src/mplog defines, read with ast: modules, and per module and class the
    names bound in them (functions, classes, assignments, imports, ``self.x = ...``)."""

    def __init__(self) -> None:
        self.modules: dict[str, set[str]] = {}  # "mplog._header" -> its top-level names
        self.members: dict[str, set[str]] = {}  # class name -> names set in its body
        self.classes: dict[str, str] = {}  # class name -> module defining it
        self.everything: set[str] = set()
        for path in sorted(SOURCE.rglob("*.py")):  # subpackages too
            parts = ("mplog", *path.relative_to(SOURCE).with_suffix("").parts)
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            self.modules[module] = top = _bound(tree.body)
            self.everything |= top | {path.stem}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    names = _bound(node.body) | _self_attributes(node)
                    self.members.setdefault(node.name, set()).update(names)
                    self.classes[node.name] = module
                    self.everything |= names
        self.everything.add("mplog")

    def has_member(self, class_name: str, member: str) -> bool:
        """True if the mplog class (or a base, mplog's or the stdlib's) has *member*."""
        cls = getattr(importlib.import_module(self.classes[class_name]), class_name)
        for base in inspect.getmro(cls):
            if member in self.members.get(base.__name__, ()) or member in vars(base):
                return True
        return False

    def resolves(self, name: str, local: set[str]) -> bool:
        """True if *name* (``a.b.c``) is defined, or is not mplog's to check."""
        parts = name.split(".")
        if parts[0] == "mplog":
            for cut in range(len(parts), 0, -1):
                module = ".".join(parts[:cut])
                if module in self.modules:
                    return self._resolve_in_module(module, parts[cut:])
            return False
        if parts[0] in self.classes and parts[0] not in local:
            return len(parts) == 1 or (len(parts) == 2 and self.has_member(*parts))
        if len(parts) > 1:  # os._exit, logging.Handler.close, handler._lock: not ours
            return True
        return (
            name in self.everything
            or name in local
            or name in ALLOWED
            or hasattr(builtins, name)
            or hasattr(logging.handlers.BaseRotatingHandler, name)  # the handlers' base
            or any(hasattr(system, name) for system in (os, os.stat_result))
        )

    def _resolve_in_module(self, module: str, rest: list[str]) -> bool:
        if not rest:
            return True
        if rest[0] not in self.modules[module]:
            return False
        if len(rest) == 1:
            return True
        return rest[0] in self.classes and len(rest) == 2 and self.has_member(*rest)


def _bound(body: list[ast.stmt]) -> set[str]:
    """The names a module or class body binds."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):  # platform branches, optional imports
            inner = list(node.body) + list(getattr(node, "orelse", []))
            for handler in getattr(node, "handlers", []):
                inner += handler.body
            names |= _bound(inner)
    return names


def _self_attributes(cls: ast.ClassDef) -> set[str]:
    """``self.x`` assigned anywhere in the class's methods, its ``__slots__``, and the
    arguments of its ``__init__`` (the handlers' options: ``use_gzip``)."""
    names: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            arguments = node.args
            names.update(a.arg for a in [*arguments.args, *arguments.kwonlyargs])
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            names.update(
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    return names


@cache
def _definitions() -> _Definitions:
    return _Definitions()


def _candidate(text: str, snake: bool = False) -> str | None:
    """The name in a backquoted *text* if it points at code (see the module
    docstring), without its ``~`` and ``()``; else None.  With *snake*, also any
    name with an underscore in it (``lock_path_for``, ``O_DSYNC``)."""
    if not _NAME.fullmatch(text):
        return None
    name = text.lstrip("~")
    call = name.endswith("()")
    name = name.removesuffix("()") if call else name
    parts = name.split(".")
    private = any(p.startswith("_") and not p.startswith("__") for p in parts)
    ours = len(parts) > 1 and (parts[0] == "mplog" or parts[0] in _definitions().classes)
    return name if call or private or ours or (snake and "_" in name) else None


def _docstrings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                yield getattr(node, "lineno", 1), docstring


def _references_in_docstrings(path: Path) -> Iterator[tuple[str, str]]:
    """(where, name) for each name a docstring of *path* points at."""
    relative = path.relative_to(ROOT)
    for line, text in _docstrings(path):
        for role, written in _ROLE.findall(text):
            target = written.strip().lstrip("~!").removesuffix("()")
            if role == "mod" and not target.startswith("mplog"):
                continue
            yield f"{relative}:{line}", target
        for literal in _LITERAL.findall(text):
            name = _candidate(literal)
            if name is not None:
                yield f"{relative}:{line}", name
        for name in _PROSE.findall(_QUOTED.sub("", text)):
            yield f"{relative}:{line}", name


def _local_names(path: Path) -> set[str]:
    """What a file outside src/mplog defines itself (its docstrings may name it)."""
    if SOURCE in path.parents:
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _bound(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            names |= _bound(node.body) | _self_attributes(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
    return names


_PYTHON_FILES = sorted(
    [*SOURCE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
)


@pytest.mark.parametrize("path", _PYTHON_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docstrings_name_only_code_that_exists(path: Path) -> None:
    """Every method, function, attribute or module a docstring names is defined."""
    definitions, local = _definitions(), _local_names(path)
    stale = sorted(
        {
            f"{where}: {name}"
            for where, name in _references_in_docstrings(path)
            if not definitions.resolves(name, local)
        }
    )
    assert not stale, "docstrings name code that does not exist:\n" + "\n".join(stale)


def test_protocol_names_only_code_that_exists() -> None:
    """PROTOCOL.md's code spans that name code (``SharedState.begin_write``,
    ``lock_path_for``, ``O_DSYNC``) name code that exists, in mplog or in :mod:`os`."""
    text = (ROOT / "PROTOCOL.md").read_text(encoding="utf-8")
    definitions = _definitions()
    stale = []
    for number, line in enumerate(text.splitlines(), 1):
        for span in _SPAN.findall(line):
            name = _candidate(span, snake=True)
            if name is not None and not definitions.resolves(name, set()):
                stale.append(f"PROTOCOL.md:{number}: {name}")
    assert not stale, "PROTOCOL.md names code that does not exist:\n" + "\n".join(stale)


def test_the_check_catches_a_stale_name() -> None:
    """The checks above can fail: a name that was renamed away is reported, a real one
    is not, and another module's private name is left alone."""
    definitions = _definitions()
    assert not definitions.resolves("_recover", set())
    assert not definitions.resolves("SharedState.recover", set())
    assert not definitions.resolves("mplog._header.SharedState._recover", set())
    assert not definitions.resolves("mplog.no_such_module", set())
    assert definitions.resolves("SharedState.begin_write", set())
    assert definitions.resolves("ActiveFile.fast_until", set())  # set in __init__
    assert definitions.resolves("ConcurrentRotatingFileHandler.handleError", set())  # stdlib base
    assert definitions.resolves("mplog._lock_file.LockFile.revalidate", set())
    assert definitions.resolves("os._exit", set())
    assert _candidate("_prepare") == "_prepare"
    assert _candidate("emit()") == "emit"
    assert _candidate("app.log") is None
