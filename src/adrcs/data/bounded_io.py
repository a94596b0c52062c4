"""Reading input with a cap on uncompressed bytes: streaming decompression that stops as soon as
the cap is passed (it never inflates the whole file first).

A `Source` is a file path or bytes already in memory (an upload); `open_data` gives a fresh
`BoundedReader` over its decompressed content each time it is called.
"""
from __future__ import annotations

import _compression
import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Union

from adrcs.data.file_kind import compression_of
from adrcs.data.limits import describe_bytes
from adrcs.errors import InputError, InputTooLarge

Source = Union[Path, bytes]
CHUNK = 1 << 20
XZ_MEMLIMIT = 256 << 20  # xz -9 needs 65 MiB; a header asking for more is refused, not allocated
# what decompressors raise on damaged or truncated data
DECODE_ERRORS = (lzma.LZMAError, EOFError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile, OSError, ValueError)


def too_large(name: str, cap: int, flag: str, what: str = "uncompressed data") -> InputTooLarge:
    """The one-line error for input over `cap` bytes."""
    return InputTooLarge(name, f"{what} is larger than the {describe_bytes(cap)} limit (raise it with {flag})")


class BoundedReader(io.RawIOBase):
    """A read-only stream over `raw` that raises `InputTooLarge` once more than `cap` bytes were read.

    Reads never ask `raw` for more than one byte past the cap, so a decompressor behind it
    inflates at most ``cap + 1`` bytes however large a read is requested (pickle frames and
    BINBYTES8 lengths come from the file and may be huge).
    """

    def __init__(self, raw: BinaryIO, cap: int, name: str, flag: str = "--max-uncompressed-mb",
                 what: str = "uncompressed data") -> None:
        super().__init__()
        self._raw, self.cap, self.name, self.flag, self.what = raw, int(cap), name, flag, what
        self.count = 0  # bytes handed out so far

    def readable(self) -> bool:
        return True

    def _room(self, n: int | None) -> int:
        room = self.cap - self.count + 1
        return room if n is None or n < 0 else max(0, min(n, room))

    def _account(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self.cap:
            raise too_large(self.name, self.cap, self.flag, self.what)
        return data

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                part = self.read(CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        want = self._room(n)
        parts, got = [], 0
        while got < want:  # buffered-file semantics: short only at the end (decompressors return less)
            part = self._raw.read(want - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return self._account(parts[0] if len(parts) == 1 else b"".join(parts))

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        return self._account(self._raw.readline(self._room(size)))

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_raw(source: Source) -> BinaryIO:
    """The undecoded bytes of `source` as a seekable binary stream."""
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")


def read_head(source: Source, n: int) -> bytes:
    """The first `n` raw bytes of `source`."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:n])
    with open(source, "rb") as f:
        return f.read(n)


def _decompressor(raw: BinaryIO, compression: str | None, name: str, cap: int, flag: str) -> BinaryIO:
    if compression is None:
        return raw
    if compression == "xz":  # as lzma.LZMAFile does, plus a cap on the decoder's memory (dictionary)
        return io.BufferedReader(_compression.DecompressReader(raw, lzma.LZMADecompressor,
                                                               trailing_error=lzma.LZMAError, memlimit=XZ_MEMLIMIT))
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if compression == "bz2":
        return bz2.BZ2File(raw)
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise InputError(name, "is zstd-compressed; install the 'zstandard' package to read it") from None
        return zstandard.ZstdDecompressor().stream_reader(raw)
    if compression == "zip":  # a zipped pickle (pandas' .zip): exactly one member
        z = zipfile.ZipFile(raw)
        members = [i for i in z.infolist() if not i.is_dir()]
        if len(members) != 1:
            raise InputError(name, f"zip file holds {len(members)} files, expected one pickle (or .npy arrays: an npz)")
        if members[0].file_size > cap:
            raise too_large(name, cap, flag)
        return z.open(members[0])
    raise InputError(name, f"unsupported compression {compression}")


def open_data(source: Source, name: str, cap: int, flag: str = "--max-uncompressed-mb") -> BoundedReader:
    """A fresh bounded stream of `source`'s content, decompressed (xz, gzip, bz2, zstd, one-file zip)
    as its first bytes say. Raises InputError for damaged compressed data."""
    raw = open_raw(source)
    compression = compression_of(read_head(source, 8))
    try:
        inner = _decompressor(raw, compression, name, cap, flag)
    except InputError:
        raw.close()
        raise
    except DECODE_ERRORS:
        raw.close()
        raise InputError(name, f"is damaged: its {compression} data cannot be opened") from None
    return BoundedReader(inner, cap, name, flag)


def decoded_head(source: Source, name: str, cap: int, n: int, flag: str = "--max-uncompressed-mb") -> bytes:
    """The first `n` bytes of `source`'s decompressed content."""
    try:
        with open_data(source, name, cap, flag) as f:
            return f.read(min(n, cap))
    except InputError:
        raise
    except DECODE_ERRORS:
        raise InputError(name, f"is damaged: its {compression_of(read_head(source, 8))} data cannot be "
                               "decompressed") from None
