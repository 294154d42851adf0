"""Compressors for rotated files: ``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"`` or a callable.

A built-in compressor streams from an open descriptor into another one, so
the source may be renamed (by a later rotation) while it is being read.  A
callable receives a path and returns the path of the compressed copy it wrote
next to it, ``path + fn.suffix``; it must leave its input in place.  The
``suffix`` attribute is required: every process must recognize compressed
backups (to shift and prune them) before it has compressed one itself.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
from dataclasses import dataclass
from typing import IO, Any, Callable, Protocol, Union

__all__ = ["BUILTIN_SUFFIXES", "CompressLike", "Compressor", "reader_for"]

CompressLike = Union[str, Callable[[str], str], None]


class Stream(Protocol):
    """What the compressed file objects of gzip, bz2, lzma and zstd have in common."""

    def write(self, data: bytes, /) -> int: ...
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


_CHUNK = 1 << 16  # small enough to give the GIL back often: zlib releases it per call

BUILTIN_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_SUFFIX = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9_.-]*")


def _gzip_writer(raw: IO[bytes], mtime: float) -> Stream:
    # Level 6 is zlib's default speed/size trade-off (gzip.open's 9 is ~3x slower
    # for ~2% smaller logs); mtime is the source's, so the archive is reproducible.
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=int(mtime))


def _bz2_writer(raw: IO[bytes], mtime: float) -> Stream:
    return bz2.BZ2File(raw, "wb")


def _xz_writer(raw: IO[bytes], mtime: float) -> Stream:
    return lzma.LZMAFile(raw, "wb")


def _zstd_writer(raw: IO[bytes], mtime: float) -> Stream:
    zstd = _zstd_module()
    if hasattr(zstd, "ZstdFile"):  # Python 3.14+: compression.zstd
        return zstd.ZstdFile(raw, "wb")  # type: ignore[no-any-return]
    return zstd.ZstdCompressor().stream_writer(raw, closefd=False)  # type: ignore[no-any-return]


def _zstd_module() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # 3.14+
    except ImportError:
        try:
            import zstandard as zstd  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ImportError(
                "compress='zstd' needs Python 3.14 or later, or the zstandard package: "
                "pip install 'mplog[zstd]'"
            ) from None
    return zstd


_WRITERS: dict[str, tuple[str, Callable[[IO[bytes], float], Stream]]] = {
    "gzip": (".gz", _gzip_writer),
    "bz2": (".bz2", _bz2_writer),
    "xz": (".xz", _xz_writer),
    "zstd": (".zst", _zstd_writer),
}


@dataclass(frozen=True)
class Compressor:
    """How to compress a rotated file; build with :meth:`parse`.

    .. versionadded:: 0.1
    """

    name: str
    suffix: str
    write: Callable[[IO[bytes], float], Stream] | None = None  # built-in: wraps the output
    function: Callable[[str], str] | None = None  # a user callable: path -> compressed path

    @classmethod
    def parse(cls, compress: CompressLike, use_gzip: bool = False) -> Compressor | None:
        """Validate *compress* (or concurrent-log-handler's *use_gzip*) at configuration time."""
        if use_gzip:
            if compress not in (None, "gzip"):
                raise ValueError(
                    f"use_gzip=True and compress={compress!r} disagree; give only compress="
                )
            compress = "gzip"
        if compress is None:
            return None
        if callable(compress):
            suffix = getattr(compress, "suffix", None)
            if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
                # Every process must recognize the compressed backups (to shift and
                # prune them) before it has compressed anything itself.
                raise ValueError(
                    f"compress={compress!r}: a compressing function needs a suffix "
                    f"attribute such as '.lz4' (got {suffix!r}): fn.suffix = '.lz4'"
                )
            return cls(getattr(compress, "__name__", "custom"), suffix, function=compress)
        if not isinstance(compress, str) or compress.lower() not in _WRITERS:
            raise ValueError(
                f"compress={compress!r}: expected 'gzip', 'bz2', 'xz', 'zstd', None "
                "or a callable taking a path and returning the compressed file's path"
            )
        name = compress.lower()
        if name == "zstd":
            _zstd_module()  # fail now, with a hint, rather than at the first rotation
        suffix, write = _WRITERS[name]
        return cls(name, suffix, write=write)

    def compress_fd(self, source: int, target: int, mtime: float) -> None:
        """Stream the file open on *source* (from its start) compressed into *target*."""
        assert self.write is not None
        with open(target, "wb", closefd=False) as raw:
            out = self.write(raw, mtime)
            try:
                os.lseek(source, 0, os.SEEK_SET)
                while chunk := os.read(source, _CHUNK):
                    out.write(chunk)
            finally:
                out.close()  # writes the trailer


def reader_for(name: str, raw: IO[bytes]) -> Stream | None:
    """Decompress *raw* (a file made by a built-in compressor, named *name*) while reading;
    None if *name* has none of their suffixes."""
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw, "rb")
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw, "rb")
    if name.endswith(".zst"):
        zstd = _zstd_module()
        if hasattr(zstd, "ZstdFile"):
            return zstd.ZstdFile(raw, "rb")  # type: ignore[no-any-return]
        return zstd.ZstdDecompressor().stream_reader(raw, closefd=False)  # type: ignore[no-any-return]
    return None
