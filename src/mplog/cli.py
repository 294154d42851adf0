"""The ``mplog`` command (also ``python -m mplog``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .demo import DemoConfig, format_report, run_demo
from .triggers import TimeSchedule
from .units import parse_size

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text, "--max-bytes")
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _when(text: str) -> str:
    try:
        TimeSchedule.parse(text)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mplog", description="Multi-process safe rotating file logging."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="several processes log into one rotating file; every record is then verified",
        description="Start worker processes that log through mplog into one small-rotating "
        "file, then read every file back and report lost, duplicated and torn records. "
        "Exits with status 1 if any record is missing or damaged.",
    )
    demo.add_argument("-p", "--processes", type=_positive, default=4, help="default: 4")
    demo.add_argument(
        "-n", "--records", type=_positive, default=2000, help="records per process (default: 2000)"
    )
    demo.add_argument(
        "--start-method",
        choices=["fork", "spawn", "forkserver"],
        help="multiprocessing start method (default: the platform's)",
    )
    demo.add_argument(
        "--max-bytes", type=_size, default=64 * 1024, help="rotate at this size (default: 64KiB)"
    )
    demo.add_argument("--when", type=_when, help="also rotate by time: S, M, H, midnight, W0-W6")
    demo.add_argument("--dir", dest="directory", help="log directory (default: a new temp dir)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        config = DemoConfig(
            processes=args.processes,
            records=args.records,
            start_method=args.start_method,
            max_bytes=args.max_bytes,
            when=args.when,
            directory=args.directory,
        )
        report = run_demo(config, out=None if args.quiet else sys.stderr)
        print(format_report(config, report))
        return 0 if report.ok else 1
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
