"""The ``mplog`` command (also ``python -m mplog``)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from . import __version__
from . import _bench as bench
from ._cli_args import positive, process_counts, size
from ._compressors import Compressor
from ._demo import DemoConfig, format_report, run_demo
from ._triggers import TimeSchedule

__all__ = ["main"]


def _when(text: str) -> str:
    try:
        TimeSchedule.parse(text)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _contenders(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in bench.CONTENDERS:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a contender (choose from {','.join(bench.CONTENDERS)})"
            )
    return list(dict.fromkeys(names))


def _output_file(text: str) -> str:
    directory = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file name")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"{text!r}: no directory {directory!r}")
    return text


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mplog", description="Multi-process safe rotating file logging."
    )
    parser.add_argument("--version", action="version", version=f"mplog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="several processes log into one rotating file; every record is then verified",
        description="Start worker processes that log through mplog into one small-rotating "
        "file, then read every file back and report lost, duplicated and torn records. "
        "Exits with status 1 if any record is missing or damaged.",
    )
    demo.add_argument("-p", "--processes", type=positive, default=4, help="default: 4")
    demo.add_argument(
        "-n", "--records", type=positive, default=2000, help="records per process (default: 2000)"
    )
    demo.add_argument(
        "--start-method",
        choices=["fork", "spawn", "forkserver"],
        help="multiprocessing start method (default: the platform's)",
    )
    demo.add_argument(
        "--max-bytes", type=size, default=64 * 1024, help="rotate at this size (default: 64KiB)"
    )
    demo.add_argument(
        "--when",
        type=_when,
        help="also rotate by time: S, M, H, midnight, W0-W6, or a duration such as '1 min'",
    )
    demo.add_argument(
        "--compress",
        choices=["gzip", "bz2", "xz", "zstd"],
        help="compress rotated files (in the background); the check decompresses them. "
        "zstd needs Python 3.14 or the zstd extra: pip install 'mplog[zstd]'",
    )
    demo.add_argument(
        "--dir",
        dest="directory",
        help="log directory, created if missing; its logs are kept "
        "(default: a new temporary directory, removed after a successful run)",
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the temporary directory and its logs"
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    demo.set_defaults(parser=demo)  # its own errors print its own usage

    run = commands.add_parser(
        "bench",
        help="throughput of mplog against the stdlib handlers and concurrent-log-handler",
        description="Several processes log into one file through each contender in turn, "
        "interleaved over the repetitions; every file is then read back.  Prints one table "
        "per process count: records/s (median), ratio to FileHandler in the same run, lost "
        "records, p99 duration of a logging call and peak RSS per process.",
    )
    run.add_argument(
        "--procs",
        type=process_counts,
        default=[1, 4],
        metavar="N,N,...",
        help="process counts to measure (default: 1,4)",
    )
    run.add_argument(
        "--records", type=positive, default=20000, help="records per process (default: 20000)"
    )
    run.add_argument(
        "--repeat", type=positive, default=3, help="repetitions; medians reported (default: 3)"
    )
    run.add_argument(
        "--contenders",
        type=_contenders,
        default=list(bench.DEFAULT_CONTENDERS),
        metavar="NAME,...",
        help=f"any of {','.join(bench.CONTENDERS)} (default: all but the fsync ones)",
    )
    run.add_argument("--plot", type=_output_file, metavar="PNG", help="draw records/s here")
    run.add_argument(
        "--json", type=_output_file, metavar="FILE", help="also write every measurement here"
    )
    run.add_argument(
        "--start-method",
        choices=["fork", "spawn", "forkserver"],
        default="fork",
        help="multiprocessing start method (default: fork)",
    )
    run.add_argument(
        "--max-bytes",
        type=size,
        default=1_000_000,
        help="rotating contenders rotate at this size (default: 1MB)",
    )
    run.add_argument(
        "--backup-count", type=positive, default=1000, help="backups kept (default: 1000)"
    )
    run.add_argument("--dir", dest="directory", type=_directory, help="where the temporary logs go")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    run.set_defaults(parser=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args.parser, args)
    if args.command == "bench":
        return _bench(args.parser, args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``mplog demo``; *parser* is the subcommand's, whose usage its errors print."""
    # In the parent, before any worker starts: one line, not a traceback per worker.
    try:
        Compressor.parse(args.compress)
    except ImportError as err:
        parser.error(f"--compress {args.compress}: {err}")
    if args.directory is not None:
        try:
            os.makedirs(args.directory, exist_ok=True)
        except OSError as err:
            parser.error(f"--dir {args.directory!r}: cannot create it: {err.strerror}")
        if not os.access(args.directory, os.W_OK | os.X_OK):
            parser.error(f"--dir {args.directory!r}: this user cannot write there")
    directory = args.directory or tempfile.mkdtemp(prefix="mplog-demo-")
    config = DemoConfig(
        processes=args.processes,
        records=args.records,
        start_method=args.start_method,
        max_bytes=args.max_bytes,
        when=args.when,
        directory=directory,
        compress=args.compress,
    )
    report = run_demo(config, out=None if args.quiet else sys.stderr)
    if args.directory is not None:
        logs = f"{directory} (kept)"
    elif args.keep:
        logs = f"{directory} (kept: --keep)"
    elif not report.ok:
        logs = f"{directory} (kept, to look into the failure)"
    else:
        shutil.rmtree(directory)
        logs = f"{directory} (a temporary directory, removed; --keep keeps it)"
    print(format_report(config, report, logs))
    return 0 if report.ok else 1


def _bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.plot:
        try:
            bench.require_matplotlib()  # before the run, not after minutes of it
        except ImportError as err:
            parser.error(f"--plot: {err}")
    result = bench.run(
        args.procs,
        args.records,
        args.repeat,
        args.contenders,
        start_method=args.start_method,
        max_bytes=args.max_bytes,
        backup_count=args.backup_count,
        directory=args.directory,
        out=None if args.quiet else sys.stderr,
    )
    print(bench.format_tables(result))
    if args.json:
        bench.write_json(result, args.json)
    if args.plot:
        bench.plot(result, args.plot)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
