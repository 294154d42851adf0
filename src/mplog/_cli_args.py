"""Argument types of the ``mplog`` command, shared with the scripts in ``benchmarks/``:
each turns one command-line word into a value or raises
:class:`argparse.ArgumentTypeError` quoting it."""

from __future__ import annotations

import argparse

from ._units import parse_size

__all__ = ["positive", "process_counts", "size"]


def positive(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def size(text: str) -> int:
    """A size in bytes, as ``maxBytes`` takes it ("1 MB", "64KiB", "1000")."""
    try:
        return parse_size(text, "--max-bytes")
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def process_counts(text: str) -> list[int]:
    """Comma-separated process counts ("1,4,16"), sorted, without repeats."""
    parts = [part.strip() for part in text.split(",")]
    for part in parts:
        if not part.isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r} in {text!r} is not a whole number (expected e.g. 1,2,4)"
            )
        if int(part) < 1:
            raise argparse.ArgumentTypeError(f"{part!r} in {text!r} must be at least 1")
    return sorted({int(part) for part in parts})
