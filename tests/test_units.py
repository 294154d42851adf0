"""Parsing of human sizes and durations."""

from __future__ import annotations

import datetime

import pytest

from mplog import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("100", 100),
        ("10 MB", 10_000_000),
        ("10MB", 10_000_000),
        ("512KiB", 512 * 1024),
        ("1.5 GB", 1_500_000_000),
        ("2 gib", 2 * 1024**3),
        ("7 b", 7),
        ("1k", 1000),
        (" 3 MiB ", 3 * 1024**2),
    ],
)
def test_parse_size_accepts_numbers_and_units(text: object, expected: int) -> None:
    """Sizes parse as SI (powers of 1000) or IEC (powers of 1024) units, case-insensitively."""
    assert parse_size(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "MB", "10 XB", "ten", "-5", "1e3", "10 MB extra"])
def test_parse_size_rejects_garbage_naming_the_value(bad: str) -> None:
    """An unparsable size raises ValueError quoting the value and the accepted forms."""
    with pytest.raises(ValueError, match=r"maxBytes=.*expected") as info:
        parse_size(bad, "maxBytes")
    assert repr(bad) in str(info.value)


def test_parse_size_rejects_negative_and_wrong_types() -> None:
    """Negative numbers raise ValueError; bools and other types raise TypeError."""
    with pytest.raises(ValueError, match="must not be negative"):
        parse_size(-1)
    with pytest.raises(TypeError):
        parse_size(True)
    with pytest.raises(TypeError):
        parse_size([1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        ("30 s", 30.0),
        ("15 min", 900.0),
        ("2 hours", 7200.0),
        ("1 day", 86400.0),
        ("1 week", 604800.0),
        (datetime.timedelta(minutes=2), 120.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    """Durations accept seconds, timedelta and '<number> <unit>' strings."""
    assert parse_duration(value) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["soon", "1 fortnight", "-1 day", -3])
def test_parse_duration_rejects_bad_values(bad: object) -> None:
    """A bad duration raises ValueError naming the value."""
    with pytest.raises(ValueError, match=r"max_age=.*"):
        parse_duration(bad, "max_age")  # type: ignore[arg-type]
