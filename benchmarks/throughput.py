"""Throughput of N processes x M records logged into ONE file, for several handlers.

A thin wrapper kept so that existing commands still work: the benchmark lives in
:mod:`mplog._bench` and this script is ``mplog bench`` (same options)::

    python benchmarks/throughput.py --procs 1,4 --records 20000 --repeat 3 [--json out.json]

From Python, ``mplog._bench.run(procs=(1, 4), records=20000)`` returns a
``BenchResult``.  See benchmarks/README.md for how to read the figures.
"""

from __future__ import annotations

import sys

from mplog._cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
