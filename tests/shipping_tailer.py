"""A shipper-like tailer for tests/test_shipping.py, run as a separate process.

    python shipping_tailer.py OUTPUT DIRECTORY INCLUDE... -- EXCLUDE...

It works the way the OpenTelemetry Collector's filelog receiver does, by polling:
every 50 ms it lists DIRECTORY, keeps the names that match an INCLUDE pattern and no
EXCLUDE pattern (``fnmatch`` on the name: ``*`` matches a leading dot, as in the Go
glob the collector uses), recognizes each file by its inode and first line (a
fingerprint, so a renamed file keeps its offset and a reused inode does not), and
appends the complete lines past its offset to OUTPUT.  It keeps no descriptor between
polls: a file that disappears before it was read is lost, which is what a shipper that
is behind meets when mplog compresses a backup too early.

Why not rsyslog for the paused test: imfile following ``app.log`` does not see files
rotated while it is stopped (lost), and a wildcard over the rotated names re-reads
every renamed backup from its start (duplicates); both were measured.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time


def main() -> None:
    output, directory, *patterns = sys.argv[1:]
    split = patterns.index("--")
    include, exclude = patterns[:split], patterns[split + 1 :]
    offsets: dict[tuple[int, bytes], int] = {}
    with open(output, "ab", buffering=0) as out:
        while True:
            for name in sorted(os.listdir(directory)):
                if not any(fnmatch.fnmatchcase(name, p) for p in include):
                    continue
                if any(fnmatch.fnmatchcase(name, p) for p in exclude):
                    continue
                try:
                    with open(os.path.join(directory, name), "rb") as f:
                        data = f.read()
                        inode = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    continue
                first = data.split(b"\n", 1)[0]
                if b"\n" not in data:
                    continue  # no fingerprint yet
                key = (inode, first)
                start = offsets.get(key, 0)
                end = data.rfind(b"\n") + 1
                if end > start:
                    out.write(data[start:end])
                    offsets[key] = end
            time.sleep(0.05)


if __name__ == "__main__":
    main()
