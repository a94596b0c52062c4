"""SINF text wafer maps (Simplified Integrator Nested Format), one map per wafer.

A map is a header of ``KEY:value`` lines (``DEVICE``, ``LOT``, ``WAFER``, ``FNLOC``, ``ROWCT``, ``COLCT``,
``BCEQU``, ``REFPX``, ``REFPY``, ``DUTMS``, ``XDIES``, ``YDIES``, ``DIECT``, ``COMMENT``; other keys are
ignored) followed by ``RowData:`` lines of space-separated codes. A header line after ``RowData`` lines starts
the next wafer, so one file may hold several (most tools write one file per wafer). Blank lines and lines
starting with ``#`` or ``//`` are skipped; CRLF and a UTF-8 BOM are fine.

Codes (all bin codes of a map have one width, 2 usually, 3 with some writers; a row without spaces is cut
into ``COLCT`` codes): ``__`` no die; ``@@`` a die not tested / not inspected (untested: status 3, bin -1); a hex
bin code otherwise (its integer is the die's bin). A die passes when its bin is in ``BCEQU`` (good bin codes,
commas or spaces; ``01`` when the key is missing or blank) or, given, ``FabOptions.good_bins`` (``--good-bins``);
every other bin fails. The all-``F`` code (``FF``) marks a reference die (a die visually different, placed for
alignment): it is a die on the wafer and counts as passing (not as a failure), its bin 255 kept; REFPX / REFPY
(a reference die's position) are kept in the meta table as ``ref_x`` / ``ref_y``, the die there keeps its code.

Orientation: the map is drawn as written (first RowData line on top, first code on the left); die x is the
column and y the row (both from 0). ``FNLOC`` (flat at 0 top, 90 right, 180 bottom, 270 left) is kept as
``notch`` (``UP`` / ``RIGHT`` / ``DOWN`` / ``LEFT``), the grid is not rotated. The map keeps its full
``ROWCT`` x ``COLCT`` size (off-wafer border included).

Per-wafer meta: lot (``LOT``), wafer (``WAFER``), part_type (``DEVICE``), notch, ref_x, ref_y, die_units
(``DUTMS``), die_size_x / die_size_y (``XDIES`` / ``YDIES``), good_bin_codes (``BCEQU`` as written),
reference_count, comment. Bad input (``ROWCT`` / ``COLCT`` disagreeing with the rows, odd codes, no rows, no
dies) is refused with one line naming the file, the line and the problem.
"""
from __future__ import annotations

import codecs
import re
from typing import Any, BinaryIO, Iterator

import numpy as np

from adrcs.data.fab.options import FabOptions
from adrcs.data.fab.wafer_grid import FAIL, PASS, UNTESTED, FabWafer
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge

NAME = "sinf"
FAB = True

KEYS = ("DEVICE", "LOT", "WAFER", "FNLOC", "ROWCT", "COLCT", "BCEQU", "REFPX", "REFPY", "DUTMS", "XDIES", "YDIES",
        "DIECT", "COMMENT")
CHUNK = 1 << 16
MAX_CODE_CHARS = 6
_NOTCH = {0: "UP", 90: "RIGHT", 180: "DOWN", 270: "LEFT"}
_KEY_LINE = re.compile(r"\s*(" + "|".join(KEYS + ("ROWDATA",)) + r")\s*:", re.I)


def sniff_bytes(head: bytes) -> bool:
    """Text whose first line (after blank and comment lines) is a SINF header key, with ``ROWCT`` / ``COLCT`` or
    ``RowData:`` among the first bytes."""
    text = head.decode("latin-1").removeprefix("\xef\xbb\xbf")  # latin-1: any bytes decode
    first = None
    keys = set()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "//")):
            continue
        m = _KEY_LINE.match(line)
        if first is None:
            if not m:
                return False
            first = m
        if m:
            keys.add(m.group(1).upper())
    return bool(keys & {"ROWCT", "COLCT", "ROWDATA"}) and len(keys) >= 2


def _lines(stream: BinaryIO, name: str, max_line: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of the decoded stream: UTF-8 (bad bytes replaced), BOM dropped, CR / LF / CRLF;
    InputTooLarge for a line over `max_line` characters."""
    dec = codecs.getincrementaldecoder("utf-8-sig")("replace")
    buf, n = "", 0
    while True:
        data = stream.read(CHUNK)
        buf += dec.decode(data, final=not data)
        hold = "\r" if data and buf.endswith("\r") else ""  # may be the first half of a CRLF split across reads
        parts = re.split(r"\r\n|\r|\n", buf[: len(buf) - len(hold)])
        buf = parts.pop() + hold if data else ""
        long = next((i for i, p in enumerate(parts) if len(p) > max_line), len(parts) if len(buf) > max_line else -1)
        if long >= 0:
            raise InputTooLarge(name, f"line {n + 1 + long}: a line of more than {max_line} characters (longer than "
                                      "the largest map row)")
        if not data and parts and parts[-1] == "":
            parts.pop()
        for p in parts:
            n += 1
            yield n, p
        if not data:
            return


class _Section:
    """One wafer's header lines and RowData lines as read."""

    def __init__(self, line: int) -> None:
        self.line = line
        self.header: dict[str, tuple[str, int]] = {}
        self.rows: list[tuple[int, list[str]]] = []


def _read_sections(stream: BinaryIO, name: str, limits: InputLimits) -> Iterator[_Section]:
    """Each wafer's section as soon as the next one starts (so a many-wafer file is not held as text)."""
    count = 0
    cur: _Section | None = None
    for n, line in _lines(stream, name, (limits.max_map_side + 1) * (MAX_CODE_CHARS + 1) + 1000):
        s = line.strip()
        if not s or s.startswith(("#", "//")):
            continue
        key, sep, value = s.partition(":")
        k = key.strip().upper()
        if not sep or not re.fullmatch(r"[A-Z][\w .()/-]{0,39}", k):
            raise InputError(name, f"line {n}: neither a 'KEY:value' header line nor 'RowData:' codes "
                                   f"({s[:40]!r})")
        if k == "ROWDATA":
            if cur is None:
                cur, count = _Section(n), count + 1
            if len(cur.rows) >= limits.max_map_side:
                raise InputTooLarge(name, f"line {n}: more than {limits.max_map_side} RowData lines in one map "
                                          "(the limit per side)")
            cur.rows.append((n, value.split()))
            continue
        if cur is None or cur.rows:
            if count >= limits.max_maps:
                raise InputTooLarge(name, f"line {n}: more than the limit of {limits.max_maps} maps")
            if cur is not None:
                yield cur
            cur, count = _Section(n), count + 1
        cur.header[k] = (value.strip(), n)
    if cur is not None:
        yield cur


def _int(sec: _Section, key: str, name: str, positive: bool = False) -> int | None:
    if key not in sec.header or not sec.header[key][0]:
        return None
    v, n = sec.header[key]
    if not re.fullmatch(r"[+-]?\d+", v) or (positive and int(v) < 1):
        kind = "a positive whole number" if positive else "a whole number"
        raise InputError(name, f"line {n}: {key}:{v} is not {kind}")
    return int(v)


def _float(sec: _Section, key: str) -> float | None:
    try:
        return float(sec.header[key][0]) if key in sec.header else None
    except ValueError:
        return None


def _good_codes(sec: _Section, name: str) -> set[int]:
    text, n = sec.header.get("BCEQU", ("", 0))
    codes = text.replace(",", " ").split()
    if not codes:
        return {1}
    try:
        return {int(c, 16) for c in codes}
    except ValueError:
        raise InputError(name, f"line {n}: BCEQU:{text} holds a code that is not hex") from None


def _grid(sec: _Section, name: str, limits: InputLimits) -> np.ndarray:
    """The (ROWCT, COLCT) array of code tokens, checked against the header."""
    rowct, colct = _int(sec, "ROWCT", name, True), _int(sec, "COLCT", name, True)
    for key, v in (("ROWCT", rowct), ("COLCT", colct)):
        if v is not None and v > limits.max_map_side:
            raise InputTooLarge(name, f"line {sec.header[key][1]}: {key}:{v} is larger than the limit of "
                                      f"{limits.max_map_side} dies per side")
    if not sec.rows:
        raise InputError(name, f"line {sec.line}: the wafer whose header starts here has no RowData lines")
    if rowct is not None and len(sec.rows) != rowct:
        n = sec.rows[rowct][0] if len(sec.rows) > rowct else sec.rows[-1][0]
        raise InputError(name, f"line {n}: {len(sec.rows)} RowData lines where ROWCT:{rowct} (line "
                               f"{sec.header['ROWCT'][1]}) says {rowct}")
    ncols = colct if colct is not None else len(sec.rows[0][1])
    tokens = []
    for n, toks in sec.rows:
        if len(toks) == 1 and ncols > 1 and len(toks[0]) % ncols == 0 and len(toks[0]) // ncols <= MAX_CODE_CHARS:
            w = len(toks[0]) // ncols  # a row written without spaces
            toks = [toks[0][i: i + w] for i in range(0, len(toks[0]), w)]
        if len(toks) != ncols:
            said = f"COLCT:{colct} (line {sec.header['COLCT'][1]}) says" if colct is not None else \
                "the first RowData line has"
            raise InputError(name, f"line {n}: RowData has {len(toks)} codes where {said} {ncols}")
        tokens.append(toks)
    if ncols > limits.max_map_side:
        raise InputTooLarge(name, f"line {sec.rows[0][0]}: {ncols} codes a row, more than the limit of "
                                  f"{limits.max_map_side} per side")
    return np.array(tokens, dtype=str)


def _wafer(sec: _Section, index: int, name: str, options: FabOptions, limits: InputLimits) -> FabWafer:
    grid = _grid(sec, name, limits)
    uniq, inv, counts = np.unique(grid, return_inverse=True, return_counts=True)
    per_width: dict[int, int] = {}
    for t, k in zip(uniq.tolist(), counts.tolist()):
        if t.strip("_") and t.strip("@"):
            per_width[len(t)] = per_width.get(len(t), 0) + k
    width = max(per_width, key=per_width.get) if per_width else 2  # the width most bin codes have
    good = set(int(b) for b in options.good_bins) if options.good_bins is not None else _good_codes(sec, name)
    status = np.empty(len(uniq), np.uint8)
    values = np.full(len(uniq), -1, np.int64)
    refs = np.zeros(len(uniq), bool)
    for i, tok in enumerate(uniq.tolist()):
        ok = len(tok) == width or tok.strip("_") == "" or tok.strip("@") == ""
        if ok and tok.strip("_") == "":
            status[i] = 0
        elif ok and tok.strip("@") == "":
            status[i] = UNTESTED
        elif ok and len(tok) <= MAX_CODE_CHARS and re.fullmatch(r"[0-9A-Fa-f]+", tok):
            values[i] = int(tok, 16)
            refs[i] = tok.upper() == "F" * width
            status[i] = PASS if refs[i] or values[i] in good else FAIL
        else:
            r = int(np.argwhere(grid == tok)[0][0])
            why = f"a {len(tok)}-character code among {width}-character ones" if len(tok) != width else \
                "not a hex bin code, '__' (no die) or '@@' (untested)"
            raise InputError(name, f"line {sec.rows[r][0]}: RowData code {tok!r} is {why}")
    inv = inv.reshape(grid.shape)
    st = status[inv]
    r, c = np.nonzero(st)
    if not len(r):
        raise InputError(name, f"line {sec.rows[0][0]}: the wafer's RowData holds no dies (every code is no "
                               "die), so it has no die coordinates")
    h = sec.header
    wafer = h.get("WAFER", ("", 0))[0] or str(index + 1)
    fn_text = h.get("FNLOC", ("", 0))[0]
    fnloc = int(fn_text) if re.fullmatch(r"[+-]?\d+", fn_text) else None
    meta: dict[str, Any] = {
        "part_type": h.get("DEVICE", ("", 0))[0] or None,
        "notch": _NOTCH.get(fnloc % 360, str(fnloc)) if fnloc is not None else (fn_text or None),
        "ref_x": _int(sec, "REFPX", name), "ref_y": _int(sec, "REFPY", name),
        "die_units": h.get("DUTMS", ("", 0))[0] or None,
        "die_size_x": _float(sec, "XDIES"), "die_size_y": _float(sec, "YDIES"),
        "good_bin_codes": h.get("BCEQU", ("", 0))[0] or None,
        "reference_count": int(refs[inv].sum()),
        "comment": h.get("COMMENT", ("", 0))[0] or None,
    }
    return FabWafer(lot=h.get("LOT", ("", 0))[0], wafer=wafer, x=c.astype(np.int64), y=r.astype(np.int64),
                    status=st[r, c], bins=values[inv][r, c], extent=(0, 0, grid.shape[1] - 1, grid.shape[0] - 1),
                    meta=meta)


def read_stream(stream: BinaryIO, name: str, options: FabOptions, limits: InputLimits) -> list[FabWafer]:
    """One `FabWafer` per header + RowData section of a SINF file."""
    wafers = [_wafer(s, i, name, options, limits) for i, s in enumerate(_read_sections(stream, name, limits))]
    if not wafers:
        raise InputError(name, "is an empty SINF file (no header or RowData lines)")
    return wafers
