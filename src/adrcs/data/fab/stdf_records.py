"""The STDF V4 record walk: finds every record header of a stream and hands out only the records a reader
asks for, without decoding (or even touching in Python) the others.

An STDF file is a chain of records, each a 4-byte header (``REC_LEN`` U2 in the file's byte order, ``REC_TYP``
U1, ``REC_SUB`` U1) and ``REC_LEN`` bytes of fields. Wafer-sort files are mostly parametric records (PTR, MPR,
FTR: tens of millions of them), so the walk is what a reader's speed comes down to. A Python loop manages
about 5 million records a second; `record_starts` does the walk with numpy instead:

* a chunk (``CHUNK`` bytes, plus the unfinished record carried over from the last one) is cut into segments
  of ``SEGMENT`` bytes, each walked by one *lane*, all lanes a step at a time together. Lane 0 starts where
  the true chain starts; every other lane starts at the first position of its segment where three headers in
  a row name known record types (``KNOWN``), most likely a real record;
* chains through any bytes merge quickly, so the true chain, entering a segment at the previous segment's
  exit, is nearly always on that segment's lane; this is checked segment by segment (a position on the lane
  is the lane's chain from there on, the walk being a function of the position). Where it is not (a lane
  started inside a record's data and ran off), that segment is walked by the plain loop, which is
  always right, only slower.

So the answer equals the plain loop's (`walk_scalar`) on any input, garbage included (the tests check it).
"""
from __future__ import annotations

from typing import BinaryIO, Iterator, NamedTuple

import numpy as np

from adrcs.errors import InputError

CHUNK = 32 << 20     # bytes read at a time (a record is at most 65,539 bytes, so the carry-over is small)
SEGMENT = 16384      # bytes per lane (fewer, longer lanes: less numpy overhead per step)
WINDOW = 64          # positions tried per segment for a lane's start
MIN_LANES_BYTES = 1 << 16  # below this many bytes the plain loop is faster

# (REC_TYP, REC_SUB) -> name: STDF V4 and V4-2007
RECORD_NAMES = {
    (0, 10): "FAR", (0, 20): "ATR", (0, 30): "VUR", (1, 10): "MIR", (1, 20): "MRR", (1, 30): "PCR",
    (1, 40): "HBR", (1, 50): "SBR", (1, 60): "PMR", (1, 62): "PGR", (1, 63): "PLR", (1, 70): "RDR",
    (1, 80): "SDR", (1, 90): "PSR", (1, 91): "NMR", (1, 92): "CNR", (1, 93): "SSR", (1, 94): "CDR",
    (2, 10): "WIR", (2, 20): "WRR", (2, 30): "WCR", (5, 10): "PIR", (5, 20): "PRR", (10, 30): "TSR",
    (15, 10): "PTR", (15, 15): "MPR", (15, 20): "FTR", (15, 30): "STR", (20, 10): "BPS", (20, 20): "EPS",
    (50, 10): "GDR", (50, 30): "DTR",
}
CODES = {name: (t << 8) | s for (t, s), name in RECORD_NAMES.items()}
KNOWN = np.zeros(1 << 16, bool)
KNOWN[list(CODES.values())] = True


def record_name(code: int) -> str:
    """``"PRR"`` for code ``(5 << 8) | 20``; ``"type 7/3"`` for one the standard does not define."""
    name = RECORD_NAMES.get((code >> 8, code & 0xFF))
    return name or f"type {code >> 8}/{code & 0xFF}"


# ---------------------------------------------------------------- the walk over one buffer


def walk_scalar(buf: bytes, start: int, end: int, big: bool, stop_at: np.ndarray | None = None,
                out: list[int] | None = None) -> tuple[int, bool]:
    """Walk the chain from `start` while positions are below `end`, appending each complete record's start
    to `out`. Returns (position reached, joined): the first position >= `end`, the start of a record that does
    not fit in `buf` (then < `end`), or, with `stop_at`, the first position marked there (joined = True)."""
    n = len(buf)
    p = start
    hi, lo = (0, 1) if big else (1, 0)
    while p < end:
        if stop_at is not None and stop_at[p]:
            return p, True
        if p + 4 > n:
            return p, False
        q = p + 4 + ((buf[p + hi] << 8) | buf[p + lo])
        if q > n:
            return p, False
        if out is not None:
            out.append(p)
        p = q
    return p, False


def _lengths(a: np.ndarray, p: np.ndarray, big: bool) -> np.ndarray:
    """REC_LEN (any U2) at positions `p` (each with p + 1 < len(a))."""
    hi, lo = (a[p], a[p + 1]) if big else (a[p + 1], a[p])
    return (hi.astype(np.int64) << 8) | lo


def _lane_starts(a: np.ndarray, lo: np.ndarray, big: bool) -> np.ndarray:
    """Per segment start `lo`: the first position of its first WINDOW where three headers in a row name known
    records (each wholly in `a`), else `lo` itself."""
    n = len(a)
    cand = lo[:, None] + np.arange(WINDOW)[None, :]
    ok = np.ones(cand.shape, bool)
    p = cand
    for _ in range(3):
        ok &= p + 4 <= n
        ps = np.minimum(p, n - 4)
        ok &= KNOWN[(a[ps + 2].astype(np.int64) << 8) | a[ps + 3]]
        p = ps + 4 + _lengths(a, ps, big)
        ok &= p <= n
    first = ok.argmax(axis=1)
    return np.where(ok.any(axis=1), cand[np.arange(len(lo)), first], lo)


def _walk_lanes(a: np.ndarray, starts: np.ndarray, ends: np.ndarray, big: bool) -> tuple[np.ndarray, np.ndarray]:
    """Walk every lane from `starts` until it reaches its `ends` (or a record that does not fit in `a`).
    Returns (mask of the complete records' starts of all lanes, each lane's exit position)."""
    n = len(a)
    on = np.zeros(n, bool)
    exits = np.empty(len(starts), np.int64)
    lane = np.arange(len(starts))
    p = starts.astype(np.int64)
    end = ends.astype(np.int64)
    while lane.size:
        ps = np.minimum(p, n - 4)  # headers past the end are read somewhere harmless, then refused below
        nxt = p + 4 + _lengths(a, ps, big)
        go = (p < end) & (p + 4 <= n) & (nxt <= n)
        if not go.all():
            stop = ~go
            exits[lane[stop]] = p[stop]
            lane, p, nxt, end = lane[go], p[go], nxt[go], end[go]
        on[p] = True
        p = nxt
    return on, exits


def record_starts(buf: bytes, start: int, big: bool) -> tuple[np.ndarray, int]:
    """Starts of the complete records of the chain that begins at `start` in `buf` (int64, ascending), and
    where the chain leaves the complete records: ``len(buf)`` at a clean end, else the start of a record
    `buf` holds only part of."""
    n = len(buf)
    if n - start < MIN_LANES_BYTES:
        out: list[int] = []
        stop, _ = walk_scalar(buf, start, n, big, out=out)
        return np.asarray(out, np.int64), stop
    a = np.frombuffer(buf, np.uint8)
    k = max(1, (n - start) // SEGMENT)
    lo = start + SEGMENT * np.arange(k, dtype=np.int64)
    ends = np.append(lo[1:], n)
    starts = lo.copy()
    starts[1:] = _lane_starts(a, lo[1:], big)
    on, exits = _walk_lanes(a, starts, ends, big)
    # follow the true chain through the segments (a Python loop over segments, not records)
    entries = ends.copy()  # per segment: the true chain's first position on the lane (ends: none)
    extra: list[int] = []  # positions walked by the plain loop
    entry, done = start, False
    ends_l, starts_l, exits_l = ends.tolist(), starts.tolist(), exits.tolist()
    for j in range(k):
        hi = ends_l[j]
        if entry >= hi:
            continue  # a long record covers the whole segment
        if not (entry >= starts_l[j] and on[entry]):
            entry, joined = walk_scalar(buf, entry, hi, big, stop_at=on, out=extra)
            if not joined:
                if entry < hi:  # a record that does not fit: the chain ends here
                    done = True
                    break
                continue
        entries[j] = entry
        entry = exits_l[j]
        if entry < hi:  # the lane (and so the chain) stopped at a record that does not fit
            done = True
            break
    pos = np.flatnonzero(on)
    seg = np.minimum((pos - start) // SEGMENT, k - 1)
    pos = pos[pos >= entries[seg]]
    if done:
        pos = pos[pos < entry]
    if extra:
        pos = np.sort(np.concatenate([pos, np.asarray(extra, np.int64)]), kind="stable")  # two sorted runs
    return pos, entry


# ---------------------------------------------------------------- PRR fields, vectorised

PRR_COLUMNS = ("SITE_NUM", "PART_FLG", "HARD_BIN", "SOFT_BIN", "X_COORD", "Y_COORD")
# per column: byte offset from the record's header, size, signed, value when the record leaves it out
_PRR_FIELDS = ((5, 1, False, 0), (6, 1, False, 0x10), (9, 2, False, 0xFFFF), (11, 2, False, 0xFFFF),
               (13, 2, True, -32768), (15, 2, True, -32768))


def decode_prrs(buf: bytes, pos: list[int], big: bool) -> np.ndarray:
    """The PRRs at `pos` in `buf` (complete records, REC_LEN >= 2) as an (n, 6) int32 array of `PRR_COLUMNS`;
    a field beyond a shorter REC_LEN gets its missing value (PART_FLG 0x10: pass/fail flag invalid)."""
    a = np.frombuffer(buf, np.uint8)
    p = np.asarray(pos, np.int64)
    n = _lengths(a, p, big)
    out = np.empty((len(p), len(_PRR_FIELDS)), np.int32)
    for j, (off, size, signed, missing) in enumerate(_PRR_FIELDS):
        have = n >= off - 4 + size
        q = np.where(have, p + off, 0)  # where the field is missing, read somewhere harmless
        v = a[q].astype(np.int32) if size == 1 else _lengths(a, q, big).astype(np.int32)
        if signed:
            v = np.where(v >= 32768, v - 65536, v)
        out[:, j] = np.where(have, v, missing)
    return out


# ---------------------------------------------------------------- the stream


class Batch(NamedTuple):
    """The wanted records of one chunk: `buf` holds them at `pos` (header starts); `index` is each one's
    record number in the file (1-based) and `offset` the stream position of ``buf[0]``."""

    buf: bytes
    pos: list[int]
    codes: list[int]
    index: list[int]
    offset: int


class RecordStream:
    """The records of an STDF stream, read ``CHUNK`` bytes at a time.

    `big`: byte order of REC_LEN (from the FAR); `offset` / `records`: bytes and records already read from the
    stream (the FAR). `batches(wanted)` yields the records whose code (``REC_TYP << 8 | REC_SUB``) is in
    `wanted`; the others are only stepped over. After the last batch, ``records`` is the number of records and
    ``size`` the stream's length.
    """

    def __init__(self, stream: BinaryIO, name: str, big: bool, *, offset: int = 0, records: int = 0,
                 chunk: int | None = None) -> None:
        self.stream, self.name, self.big, self.chunk = stream, name, big, chunk or CHUNK
        self.records = records  # records before the stream's current position (e.g. 1 after the FAR)
        self.size = offset      # bytes read so far

    def batches(self, wanted: set[int]) -> Iterator[Batch]:
        """The wanted records, chunk by chunk, in file order; InputError for a stream that ends inside a
        record."""
        want = np.zeros(1 << 16, bool)
        want[list(wanted)] = True
        carry, offset = b"", self.size
        while True:
            data = self.stream.read(self.chunk)
            if not data:
                break
            buf = carry + data if carry else data
            self.size += len(data)
            pos, stop = record_starts(buf, 0, self.big)
            a = np.frombuffer(buf, np.uint8)
            codes = (a[pos + 2].astype(np.int64) << 8) | a[pos + 3]
            sel = np.flatnonzero(want[codes])
            if sel.size:
                yield Batch(buf, pos[sel].tolist(), codes[sel].tolist(), (sel + self.records + 1).tolist(), offset)
            self.records += len(pos)
            carry = buf[stop:]
            offset += stop
        if carry:
            self._truncated(carry, offset)

    def _truncated(self, carry: bytes, offset: int) -> None:
        where = f"record {self.records + 1}"
        if len(carry) < 4:
            raise InputError(self.name, f"{where} at byte {offset}: the file ends inside the record's header "
                                        f"({len(carry)} of 4 bytes; truncated)")
        hi, lo = (carry[0], carry[1]) if self.big else (carry[1], carry[0])
        rec_len = (hi << 8) | lo
        code = (carry[2] << 8) | carry[3]
        raise InputError(self.name, f"{where} ({record_name(code)}) at byte {offset}: REC_LEN {rec_len} runs "
                                    f"past the end of the file (only {len(carry) - 4} of its {rec_len} bytes "
                                    "are there; truncated)")
