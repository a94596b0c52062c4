"""What a file is, from its first bytes: compression, pickle, npz/zip, or something else by name.

The loader decides from content, never from the file name, so a JPEG renamed ``.pkl`` is called a
JPEG image and never reaches the unpickler.
"""
from __future__ import annotations

import re

# compressed containers the loader opens, by magic bytes
COMPRESSIONS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
]

# other things people point the loader at, for a helpful "looks like ..." message
_OTHER = [
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x93NUMPY", "a single NumPy .npy array (save the maps in an .npz: numpy.savez(OUT, arr_0=maps))"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (unpack it first)"),
    (b"Rar!", "a RAR archive (unpack it first)"),
    (b"\x04\x22\x4d\x18", "LZ4-compressed data (not supported; use xz, gzip, bz2 or zip)"),
]

# classic (protocol 0/1) pickle starts: MARK, EMPTY_LIST, EMPTY_DICT, or GLOBAL "module\nname\n"
_CLASSIC_GLOBAL = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
HEAD_BYTES = 512


def compression_of(head: bytes) -> str | None:
    """The compression named by the magic bytes at the start of `head`, or None."""
    for magic, name in COMPRESSIONS:
        if head.startswith(magic):
            return name
    return None


def is_pickle(head: bytes) -> bool:
    """True when `head` starts like a pickle: PROTO opcode 0x80 + protocol 2..5, or a classic pickle."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head[:1] in (b"(", b"]", b"}") and len(head) > 1 and head[1:2] in b"(]}cdlpIFSVNtK.aeqhgsu0":
        return True
    return bool(_CLASSIC_GLOBAL.match(head))


def describe(head: bytes) -> str:
    """A short phrase for what `head` looks like ("a JPEG image", "a text file", ...)."""
    for magic, what in _OTHER:
        if head.startswith(magic):
            return what
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive (unpack it first)"
    comp = compression_of(head)
    if comp:
        return f"{comp}-compressed data inside compressed data (compress only once)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return "a JSON text (JSON goes to the service's JSON route, not a data file)"
    if text[:5].lower() == b"<?xml" or text[:1] == b"<":
        return "an XML/HTML text"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and all(c.isprintable() or c in "\r\n\t" for c in decoded):
        return "a text file (CSV or similar)"
    return "an unknown binary file"


def not_wafer_map(head: bytes) -> str:
    """The one-line problem for content that is neither a pickle nor an npz."""
    return (f"not a wafer-map file (looks like {describe(head)}); expected a pickle (.pkl, .pkl.xz), an .npz, "
            "or an STDF, KLARF, SINF or E142 / G85 file")
