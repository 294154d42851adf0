"""How ``mplog bench`` and the scripts in ``benchmarks/`` run their child processes.

:func:`run_writers` starts the writers (and a queue listener), takes one report
from each off a results queue and reaps every child on every path (:func:`reap`,
:func:`collect_reports`); :func:`fresh_runs` gives each measurement an empty
directory of its own, and :func:`rotated` the order of the contenders in each
repetition.  What runs inside the children is :mod:`mplog._bench_contenders`'s.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, Callable, TypeVar

__all__ = ["collect_reports", "fresh_runs", "reap", "rotated", "run_writers"]


def collect_reports(results: Any, count: int, processes: list[Any], what: str) -> list[Any]:
    """Take *count* reports off the queue *results*, failing as soon as one of
    *processes* has died (*what* names the run in the error)."""
    reports: list[Any] = []
    while len(reports) < count:
        try:
            reports.append(results.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"{what}: a child exited with code {dead[0]}") from None
    return reports


def reap(processes: list[Any]) -> None:
    """Kill what is still running of *processes* and wait for all of them: on every exit
    path of a run (a broken barrier, a crash), no child is left behind."""
    for p in processes:
        if p.is_alive():
            p.kill()
        if p.pid is not None:
            p.join()


def run_writers(
    writers: list[Any], results: Any, what: str, listener: Any = None, stop: Any = None
) -> list[Any]:
    """Start *writers*, take one report from each off *results*, wait for them to exit
    with status 0 (else RuntimeError naming *what*); reap them on every path.

    A *listener* process starts first; once every writer has exited, and so put all
    its records on the listener's queue, *stop* is set and the listener's report is
    taken too.
    """
    children = [*writers, *([listener] if listener is not None else [])]
    try:
        for p in children[len(writers) :] + writers:  # the listener first
            p.start()
        reports = collect_reports(results, len(writers), children, what)
        for p in writers:
            p.join()
        if listener is not None:
            stop.set()
            reports += collect_reports(results, 1, children, what)
        for p in children:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"{what}: a child exited with code {p.exitcode}")
    finally:
        reap(children)
    return reports


T = TypeVar("T")


def rotated(items: Iterable[T], shift: int) -> list[T]:
    """*items* rotated left by *shift*: repetition *shift* runs them in this order, so
    that a slow drift of the machine does not always hit the same one."""
    ordered = list(items)
    shift = shift % len(ordered) if ordered else 0
    return ordered[shift:] + ordered[:shift]


def fresh_runs(
    repeat: int, order: Callable[[int], Iterable[T]], prefix: str, parent: str | None = None
) -> Iterator[tuple[int, T, str]]:
    """``(repetition, item, directory)`` for each of *repeat* repetitions and each item
    of ``order(repetition)``, in an empty directory of its own.

    Each directory is removed once the next is asked for, and the temporary
    directory holding them (named *prefix*..., in *parent*) at the end, on every path.
    """
    base = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        for rep in range(repeat):
            for index, item in enumerate(order(rep)):
                directory = os.path.join(base, f"{rep}-{index}")
                os.mkdir(directory)
                yield rep, item, directory
                shutil.rmtree(directory)
    finally:
        shutil.rmtree(base, ignore_errors=True)
