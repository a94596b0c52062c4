"""KLARF syntax for ``adrcs.data.formats.klarf``: the tokenizer, table rows, 1.1 / 1.2 statements, 1.8 records.

`Lexer` streams a KLARF file as tokens with line numbers: words and numbers, quoted strings (kept with their
quotes), and the punctuation ``{ } ; ,``. It reads the decompressed bytes in 1 MiB chunks and never holds more
than one chunk plus one line; CRLF, a UTF-8 BOM and any leading whitespace are accepted.

`Table` reads the rows of a ``DefectList`` / ``SampleTestPlan`` (1.2: values up to the ``;``; 1.8: a
``Data n { row; row; }`` block) in batches, keeping only the wanted columns as float arrays, so a table of
millions of values never becomes one Python list. An ``IMAGELIST`` column holds a count ``n`` followed by
``n`` (image id, image type) pairs, so rows with one are of varying width (and may run over several lines).

`read_12` (flat ``Keyword values;`` statements, a new wafer at each ``WaferID``; lot statements after a wafer's
``DefectList`` belong to the wafers that follow) and `read_18` (``Record`` / ``Field`` / ``List`` nesting, a
wafer per ``WaferRecord``, fields inherited from the enclosing records) give one `WaferRecord` per wafer.
Every refusal is an InputError naming the file and the line.
"""
from __future__ import annotations

import bisect
import re
from datetime import datetime
from typing import Any, BinaryIO, Iterator

import numpy as np

from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge

CHUNK = 1 << 20
MAX_LINE = 16 << 20           # longest line accepted (characters)
BATCH = 1 << 18               # table values converted at a time
MAX_INDEX = 1_000_000_000     # |XINDEX| / |YINDEX| beyond this is not a die index
_TOKEN = re.compile(r'"[^"\n]*"?|[{};,]|[^\s{};,"]+')
_PUNCT = ";{},"
VARIABLE_COLUMNS = frozenset({"IMAGELIST"})
MAX_IMAGES = 10_000           # entries of one defect's IMAGELIST
INDEX_COLUMNS = frozenset({"XINDEX", "YINDEX"})  # die indices: whole numbers
MAX_DEFECTS = 100_000        # per wafer
MAX_DEPTH = 32               # KLARF 1.8 record nesting
DEFECT_COLUMNS = ("XINDEX", "YINDEX", "XREL", "YREL", "XSIZE", "YSIZE", "CLASSNUMBER")
PLAN_COLUMNS = ("XINDEX", "YINDEX")
# 1.2 statements that describe the lot: after a wafer's DefectList they belong to the wafers that follow
_LOT_LEVEL = {"fileversion", "filetimestamp", "inspectionstationid", "sampletype", "resulttimestamp", "lotid",
              "samplesize", "deviceid", "setupid", "stepid", "sampleorientationmarktype", "orientationmarklocation",
              "diepitch", "dieorigin"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


class Lexer:
    """Tokens of a KLARF byte stream; ``line`` is the line of the token last returned."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.name = name
        self._lines = self._line_tokens(stream)
        self._toks: list[str] = []
        self._i = 0
        self.line = 0
        self.at_eof = False

    def error(self, problem: str, line: int | None = None) -> InputError:
        """A one-line InputError naming the file and the line (default: the current token's)."""
        return InputError(self.name, f"line {self.line if line is None else line}: {problem}")

    def _line_tokens(self, stream: BinaryIO) -> Iterator[tuple[int, list[str]]]:
        carry, line_no, first = "", 0, True
        while True:
            data = stream.read(CHUNK)
            if first and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            first = False
            if not data:
                break
            lines = (carry + data.decode("latin-1")).split("\n")
            carry = lines.pop()
            if len(carry) > MAX_LINE:
                raise InputError(self.name, f"line {line_no + len(lines) + 1} is longer than "
                                            f"{MAX_LINE >> 20} MiB characters: not a KLARF file")
            for text in lines:
                line_no += 1
                toks = self._split(text, line_no)
                if toks:
                    yield line_no, toks
        if carry:
            toks = self._split(carry, line_no + 1)
            if toks:
                yield line_no + 1, toks

    def _split(self, text: str, line_no: int) -> list[str]:
        """The tokens of one line (str.split where there is no quote: the table rows, 4x faster)."""
        if '"' not in text:
            for p in _PUNCT:
                if p in text:
                    text = text.replace(p, f" {p} ")
            return text.split()
        toks = _TOKEN.findall(text)
        for t in toks:  # an open quote runs to the end of its line
            if t[0] == '"' and (len(t) == 1 or t[-1] != '"'):
                raise InputError(self.name, f"line {line_no}: unterminated string {t[:40]}")
        return toks

    def _advance(self) -> bool:
        for line_no, toks in self._lines:
            self.line, self._toks, self._i = line_no, toks, 0
            return True
        self.at_eof = True
        self._toks, self._i = [], 0
        return False

    def next(self) -> str | None:
        """The next token, or None at the end of the file."""
        if self._i >= len(self._toks) and not self._advance():
            return None
        tok = self._toks[self._i]
        self._i += 1
        return tok

    def peek(self) -> str | None:
        if self._i >= len(self._toks) and not self._advance():
            return None
        return self._toks[self._i]

    def expect(self, want: str, what: str) -> None:
        tok = self.next()
        if tok != want:
            got = "the end of the file" if tok is None else repr(tok[:40])
            raise self.error(f"expected {want!r} {what}, found {got}")

    def segments(self, stop: str) -> Iterator[tuple[int, list[str]]]:
        """(line, tokens) pieces up to the token `stop`, which is consumed; sets ``stopped`` (False when the
        file ended first)."""
        self.stopped = False
        toks, i = self._toks, self._i
        if i < len(toks):  # the rest of the current line
            if stop in toks[i:]:
                j = toks.index(stop, i)
                self._i = j + 1
                self.stopped = True
                if j > i:
                    yield self.line, toks[i:j]
                return
            self._i = len(toks)
            yield self.line, toks[i:]
        for line_no, toks in self._lines:
            self.line = line_no
            if stop in toks:
                j = toks.index(stop)
                self._toks, self._i = toks, j + 1
                self.stopped = True
                if j:
                    yield line_no, toks[:j]
                return
            self._toks, self._i = toks, len(toks)
            yield line_no, toks
        self.at_eof = True
        self._toks, self._i = [], 0

    def until(self, stop: str, what: str, keep: int = 100_000) -> list[str]:
        """The tokens up to `stop` (consumed); at most `keep` are kept (the rest is read and dropped)."""
        start, out = self.line, []
        for _, toks in self.segments(stop):
            if len(out) < keep:
                out.extend(toks[: keep - len(out)])
        if not self.stopped:
            raise self.error(f"{what} is not terminated by {stop!r} (the file ends at line {self.line})", start)
        return out


def unquote(tok: str) -> str:
    return tok[1:-1] if len(tok) >= 2 and tok[0] == '"' and tok[-1] == '"' else tok


def text_of(values: list[str] | None) -> str | None:
    """Values as one string (quotes and commas dropped), None when absent or empty."""
    if not values:
        return None
    text = " ".join(unquote(v) for v in values if v != ",").strip()
    return text or None


def numbers(values: list[str] | None) -> list[float] | None:
    """The numeric values of a field (commas dropped), None when absent or not all numbers."""
    if not values:
        return None
    try:
        return [float(unquote(v)) for v in values if v != ","]
    except ValueError:
        return None


_TIME_FORMATS = ("%m-%d-%y %H:%M:%S", "%m-%d-%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%y %H:%M:%S",
                 "%m/%d/%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%m-%d-%y", "%m-%d-%Y", "%Y-%m-%d")


def iso_time(values: list[str] | None) -> str | None:
    """A KLARF timestamp (``03-20-19 15:30:00``) as ISO 8601; the text itself when it is not a date."""
    text = text_of(values)
    if text is None:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return text


class Table:
    """The wanted columns of one table's rows: ``columns`` holds upper-case names in file order."""

    def __init__(self, lex: Lexer, columns: list[str], wanted: tuple[str, ...], cap: int, what: str,
                 cap_problem: str) -> None:
        self.lex, self.columns, self.what, self.cap, self.cap_problem = lex, columns, what, cap, cap_problem
        self.pos = {c: columns.index(c) for c in wanted if c in columns}
        self.var = [i for i, c in enumerate(columns) if c in VARIABLE_COLUMNS]
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in self.pos}
        self.rows = 0

    def result(self) -> dict[str, np.ndarray]:
        return {c: (np.concatenate(p) if p else np.zeros(0)) for c, p in self.parts.items()}

    # ---- batches: toks is a flat list, marks holds (offset, line) where each line's tokens begin

    def _line_at(self, marks: list[tuple[int, int]], offset: int) -> int:
        k = bisect.bisect_right([m[0] for m in marks], offset) - 1
        return marks[max(k, 0)][1] if marks else self.lex.line

    def _take(self, toks: list[str], starts: list[int] | range, shifts: list[list[int]] | None,
              marks: list[tuple[int, int]]) -> None:
        """Convert the wanted values of the rows beginning at `starts` (each column shifted by the widths of
        the variable columns before it)."""
        n = len(starts)
        if self.rows + n > self.cap:
            row = starts[min(self.cap - self.rows, n - 1)]
            raise InputTooLarge(self.lex.name, f"line {self._line_at(marks, row)}: {self.cap_problem}")
        for c, j in self.pos.items():
            if shifts is None and isinstance(starts, range):
                vals = toks[starts.start + j: starts.stop: starts.step] if n else []
            elif shifts is None:
                vals = [toks[s + j] for s in starts]
            else:
                before = bisect.bisect_left(self.var, j)  # variable columns before column j
                if before == 0:
                    vals = [toks[s + j] for s in starts]
                elif before == 1:
                    vals = [toks[s + j + sh[0]] for s, sh in zip(starts, shifts)]
                else:
                    vals = [toks[s + j + sum(sh[:before])] for s, sh in zip(starts, shifts)]
            try:
                arr = np.array(vals, dtype=np.float64)
            except ValueError:
                for k, v in enumerate(vals):
                    try:
                        float(v)
                    except ValueError:
                        line = self._line_at(marks, starts[k])
                        raise self.lex.error(f"{self.what} row: {c} {v[:40]!r} is not a number", line) from None
                raise
            if c in INDEX_COLUMNS:
                bad = ~np.isfinite(arr) | (np.abs(arr) > MAX_INDEX) | (arr != np.round(arr))
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    raise self.lex.error(f"{self.what} row: {c} {vals[k][:40]!r} is not a die index (a whole "
                                         "number)", self._line_at(marks, starts[k]))
            self.parts[c].append(arr)
        self.rows += n

    def _scan_variable(self, toks: list[str], begin: int, end: int, marks: list[tuple[int, int]],
                       final: bool) -> tuple[list[int], list[list[int]], int]:
        """Row starts and the extra widths of the variable columns (2 x their count) of the complete rows in
        toks[begin:end]; returns where the first incomplete row begins (== end when none)."""
        var, ncol = self.var, len(self.columns)
        steps = [var[0]] + [var[k] - var[k - 1] - 1 for k in range(1, len(var))]
        tail = ncol - 1 - var[-1]
        starts, shifts, pos = [], [], begin
        while pos < end:
            p, extra = pos, []
            for k, step in enumerate(steps):
                p += step
                if p >= end:
                    break
                t = toks[p]
                if not (t.isascii() and t.isdigit()):
                    raise self.lex.error(f"{self.what} row: {self.columns[var[k]]} count {t[:40]!r} is not a "
                                         "whole number", self._line_at(marks, p))
                w = 2 * int(t)
                if w > 2 * MAX_IMAGES:
                    raise self.lex.error(f"{self.what} row: {self.columns[var[k]]} count {t[:40]} is more than "
                                         f"{MAX_IMAGES:,}", self._line_at(marks, p))
                extra.append(w)
                p += 1 + w
            p += tail
            if p > end or len(extra) < len(var):
                if final:
                    raise self.lex.error(f"{self.what} row has too few values for the {ncol} columns of "
                                         f"its spec ({', '.join(self.columns[:6])}...)", self._line_at(marks, pos))
                return starts, shifts, pos
            starts.append(pos)
            shifts.append(extra)
            pos = p
        return starts, shifts, pos

    def read_flat(self) -> None:
        """KLARF 1.2: rows of whitespace-separated values up to the ``;`` that ends the list."""
        lex = self.lex
        start_line = lex.line
        toks: list[str] = []
        marks: list[tuple[int, int]] = []
        for line, piece in lex.segments(";"):
            marks.append((len(toks), line))
            toks.extend(piece)
            if len(toks) >= BATCH:
                toks, marks = self._flat_batch(toks, marks, final=False)
        if not lex.stopped:
            raise lex.error(f"{self.what} is not terminated by ';' (the file ends at line {lex.line})", start_line)
        self._flat_batch(toks, marks, final=True)

    def _flat_batch(self, toks: list[str], marks: list[tuple[int, int]], final: bool):
        ncol = len(self.columns)
        if self.var:
            starts, shifts, done = self._scan_variable(toks, 0, len(toks), marks, final)
            self._take(toks, starts, shifts, marks)
        else:
            done = len(toks) // ncol * ncol
            if final and done != len(toks):
                raise self.lex.error(f"{self.what} row has {len(toks) - done} values left over for the {ncol} "
                                     f"columns of its spec (rows must hold {ncol} values each)",
                                     self._bad_line(marks, len(toks), ncol))
            self._take(toks, range(0, done, ncol), None, marks)
        if final:
            return [], []
        rest = toks[done:]
        keep = [(o - done, ln) for o, ln in marks if o >= done]
        if not keep or keep[0][0] > 0:
            keep.insert(0, (0, self._line_at(marks, done)))
        return rest, keep

    def _bad_line(self, marks: list[tuple[int, int]], total: int, ncol: int) -> int:
        """The first line not holding whole rows (rows one per line), else the line of the last row."""
        for k, (off, line) in enumerate(marks):
            end = marks[k + 1][0] if k + 1 < len(marks) else total
            if (end - off) % ncol:
                return line
        return self._line_at(marks, total // ncol * ncol)

    def read_data(self, declared: int | None, data_line: int) -> None:
        """KLARF 1.8: ``{ v v v ; v v v ; }`` (the ``Data n`` header, on `data_line`, already read)."""
        lex, ncol = self.lex, len(self.columns)
        lex.expect("{", f"after Data of {self.what}")
        start_line = data_line
        toks: list[str] = []
        marks: list[tuple[int, int]] = []
        for line, piece in lex.segments("}"):
            if "{" in piece:
                raise lex.error(f"unexpected '{{' in the Data of {self.what}", line)
            marks.append((len(toks), line))
            toks.extend(piece)
            if len(toks) >= BATCH:
                toks, marks = self._data_batch(toks, marks, ncol, final=False)
        if not lex.stopped:
            raise lex.error(f"Data of {self.what} has no closing '}}' (the file ends at line {lex.line})", start_line)
        self._data_batch(toks, marks, ncol, final=True)
        if declared is not None and declared != self.rows:
            raise lex.error(f"Data of {self.what} says {declared} rows but holds {self.rows}", start_line)

    def _data_batch(self, toks: list[str], marks: list[tuple[int, int]], ncol: int, final: bool):
        semis = [i for i, t in enumerate(toks) if t == ";"]
        if final and (not semis or semis[-1] != len(toks) - 1) and toks:
            toks = toks + [";"]  # the last row's ';' may be left out before the '}'
            semis.append(len(toks) - 1)
        done = semis[-1] + 1 if semis else 0
        starts = [0] + [s + 1 for s in semis[:-1]] if semis else []
        widths = [e - s for s, e in zip(starts, semis)]
        if self.var:
            shifts = []
            for s, e in zip(starts, semis):
                got, sh, _ = self._scan_variable(toks, s, e, marks, final=True)
                if len(got) != 1:
                    raise self.lex.error(f"{self.what} row holds more values than its {ncol} columns",
                                         self._line_at(marks, s))
                shifts.append(sh[0])
            self._take(toks, starts, shifts, marks)
        else:
            for s, w in zip(starts, widths):
                if w != ncol:
                    raise self.lex.error(f"{self.what} row has {w} values, its Columns name {ncol}",
                                         self._line_at(marks, s))
            self._take(toks, range(0, done, ncol + 1) if starts else range(0), None, marks)
        if final:
            return [], []
        rest = toks[done:]
        keep = [(o - done, ln) for o, ln in marks if o >= done]
        if not keep or keep[0][0] > 0:
            keep.insert(0, (0, self._line_at(marks, done)))
        return rest, keep


class WaferRecord:
    """A wafer as read: its own fields, the enclosing fields (nearest first), plan and defect tables."""

    def __init__(self, line: int, fields: dict, parents: list[dict], wafer_id: str | None = None,
                 lot_id: str | None = None) -> None:
        self.line, self.fields, self.parents = line, fields, parents
        self.wafer_id, self.lot_id = wafer_id, lot_id
        self.plans: list[dict[str, np.ndarray]] = []
        self.defects: list[dict[str, np.ndarray]] = []
        self.n_defects = 0
        self.done = False

    def get(self, key: str) -> Any:
        for d in (self.fields, *self.parents):
            if key in d:
                return d[key]
        return None


def _defect_cap(w: WaferRecord) -> tuple[int, str]:
    wid = text_of(w.get("waferid")) or w.wafer_id or "?"
    return MAX_DEFECTS - w.n_defects, f"wafer {wid!r} lists more than {MAX_DEFECTS:,} defects (the limit per wafer)"


def _add_defects(lex: Lexer, w: WaferRecord, table: Table, line: int) -> None:
    if table.rows and not {"XINDEX", "YINDEX"} <= set(table.columns):
        raise lex.error("the defect columns have no XINDEX / YINDEX: defects cannot be placed on dies", line)
    if table.rows:
        w.defects.append(table.result())
        w.n_defects += table.rows


def _plan_cap(limits: InputLimits) -> tuple[int, str]:
    n = limits.max_map_side ** 2
    return n, f"SampleTestPlan lists more than {n:,} dies (a map of {limits.max_map_side} per side)"


# ---------------------------------------------------------------- KLARF 1.1 / 1.2 statements


def _spec(lex: Lexer, vals: list[str], line: int) -> list[str]:
    if not vals:
        raise lex.error("DefectRecordSpec names no columns", line)
    try:
        n = int(vals[0])
    except ValueError:
        raise lex.error(f"DefectRecordSpec column count {vals[0][:40]!r} is not a number", line) from None
    names = [unquote(v).upper() for v in vals[1:] if v != ","]
    if n != len(names):
        raise lex.error(f"DefectRecordSpec says {n} columns but names {len(names)}", line)
    if len(set(names)) != len(names):
        raise lex.error("DefectRecordSpec names a column twice", line)
    return names


def _classes(vals: list[str]) -> dict[str, str]:
    """{class number: name} of ``ClassLookup n  num "name" ...`` values (loosely: pairs that fit)."""
    out, k = {}, 1 if vals and len(vals) % 2 == 1 else 0
    while k + 1 < len(vals):
        num, label = vals[k], unquote(vals[k + 1])
        if re.fullmatch(r"[+-]?\d+", num):
            out[str(int(num))] = label
        k += 2
    return out


def read_12(lex: Lexer, limits: InputLimits) -> list[WaferRecord]:
    """The wafers of a KLARF 1.1 / 1.2 file (the first token not yet read)."""
    header: dict[str, Any] = {}
    wafers: list[WaferRecord] = []
    cur: WaferRecord | None = None
    last_spec: list[str] | None = None  # a wafer without its own DefectRecordSpec uses the one seen last

    def open_wafer(line: int) -> WaferRecord:
        if len(wafers) >= limits.max_maps:
            raise InputTooLarge(lex.name, f"line {line}: holds more than {limits.max_maps} wafers (the map limit)")
        wafers.append(WaferRecord(line, {}, [dict(header)]))
        return wafers[-1]

    while True:
        tok = lex.next()
        if tok is None:
            break
        line, kw = lex.line, tok.lower()
        if not _WORD.match(tok):
            raise lex.error(f"expected a KLARF keyword, found {tok[:40]!r}")
        if kw == "endoffile":
            if lex.peek() == ";":
                lex.next()
            break
        if kw == "waferid":
            cur = open_wafer(line)
            cur.fields["waferid"] = lex.until(";", "WaferID statement", keep=64)
        elif kw == "sampletestplan":
            cur = cur or open_wafer(line)
            count = lex.next()
            if count is None or count == ";" or not re.fullmatch(r"\d+", count):
                raise lex.error(f"SampleTestPlan count {str(count)[:40]!r} is not a number", line)
            if count == "0":
                lex.until(";", "SampleTestPlan statement", keep=0)
                continue
            cap, problem = _plan_cap(limits)
            table = Table(lex, list(PLAN_COLUMNS), PLAN_COLUMNS, cap, "SampleTestPlan", problem)
            table.read_flat()
            if table.rows != int(count):
                raise lex.error(f"SampleTestPlan says {count} dies but lists {table.rows}", line)
            cur.plans.append(table.result())
        elif kw == "defectrecordspec":
            last_spec = _spec(lex, lex.until(";", "DefectRecordSpec statement", keep=10_000), line)
            (header if cur is None or cur.done else cur.fields)["defectrecordspec"] = last_spec
        elif kw == "defectlist":
            cur = cur or open_wafer(line)
            columns = cur.get("defectrecordspec") or last_spec
            if columns is None:
                raise lex.error("DefectList has no DefectRecordSpec before it (the names of its columns)")
            cap, problem = _defect_cap(cur)
            table = Table(lex, columns, DEFECT_COLUMNS, cap, "DefectList", problem)
            table.read_flat()
            _add_defects(lex, cur, table, line)
            cur.done = True
        elif kw == "classlookup":
            (header if cur is None or cur.done else cur.fields)["_classes"] = _classes(
                lex.until(";", "ClassLookup statement"))
        else:
            vals = lex.until(";", f"{tok[:40]} statement", keep=64)
            if kw == "summarylist" and cur is not None:
                cur.done = True
            target = header if cur is None or (cur.done and kw in _LOT_LEVEL) else cur.fields
            target[kw] = vals
    return wafers


# ---------------------------------------------------------------- KLARF 1.8 records


class _Frame:
    def __init__(self, kind: str, name: str | None, line: int, label: str) -> None:
        self.kind, self.name, self.line, self.label = kind, name, line, label
        self.wafer: WaferRecord | None = None
        self.fields: dict[str, Any] = {}


def _word(lex: Lexer, what: str) -> str:
    tok = lex.next()
    if tok is None or not _WORD.match(tok):
        got = "the end of the file" if tok is None else repr(tok[:40])
        raise lex.error(f"expected {what}, found {got}")
    return tok


def _columns(lex: Lexer, lname: str) -> list[str]:
    count = lex.next() if lex.peek() != "{" else None
    lex.expect("{", f"after Columns of List {lname}")
    vals = lex.until("}", f"Columns of List {lname}", keep=100_000)
    groups, group = [], []
    for v in vals + [","]:
        if v == ",":
            if group:
                groups.append(group)
            group = []
        else:
            group.append(v)
    names = [unquote(g[-1]).upper() for g in groups]
    if count is not None and (not (count.isascii() and count.isdigit()) or int(count) != len(names)):
        raise lex.error(f"Columns of List {lname} says {count[:40]} columns but names {len(names)}")
    return names


def _list_18(lex: Lexer, lname: str, stack: list[_Frame], limits: InputLimits, start: int) -> None:
    kind, columns = lname.lower(), None
    wafer = next((f.wafer for f in reversed(stack) if f.wafer is not None), None)
    while True:
        tok = lex.next()
        if tok is None:
            raise lex.error(f"List {lname} is not closed by '}}' (braces unbalanced: the file ends at line "
                            f"{lex.line})", start)
        if tok == "}":
            return
        k = tok.lower()
        if k == "columns":
            columns = _columns(lex, lname)
        elif k == "data":
            line = lex.line
            declared = None
            if lex.peek() != "{":
                n = lex.next()
                if n is None or not (n.isascii() and n.isdigit()):
                    raise lex.error(f"Data row count {str(n)[:40]!r} of List {lname} is not a number")
                declared = int(n)
            if columns is None:
                raise lex.error(f"List {lname} has Data before its Columns")
            if kind == "defectlist" or kind in ("sampletestplanlist", "sampletestplan"):
                if wafer is None:
                    raise lex.error(f"List {lname} lies outside a WaferRecord")
                if kind == "defectlist":
                    cap, problem = _defect_cap(wafer)
                    table = Table(lex, columns, DEFECT_COLUMNS, cap, "DefectList", problem)
                    table.read_data(declared, line)
                    _add_defects(lex, wafer, table, line)
                else:
                    cap, problem = _plan_cap(limits)
                    table = Table(lex, columns, PLAN_COLUMNS, cap, lname, problem)
                    table.read_data(declared, line)
                    if table.rows and not set(PLAN_COLUMNS) <= set(columns):
                        raise lex.error(f"List {lname} has no XINDEX / YINDEX columns", line)
                    if table.rows:
                        wafer.plans.append(table.result())
            elif kind == "classlookuplist" and "CLASSNUMBER" in columns and "CLASSNAME" in columns:
                lex.expect("{", f"after Data of List {lname}")
                vals = lex.until("}", f"Data of List {lname}", keep=1_000_000)
                i, j, out, row = columns.index("CLASSNUMBER"), columns.index("CLASSNAME"), {}, []
                for v in vals + [";"]:
                    if v != ";":
                        row.append(v)
                        continue
                    if len(row) == len(columns) and re.fullmatch(r"[+-]?\d+", row[i]):
                        out[str(int(row[i]))] = unquote(row[j])
                    row = []
                stack[-1].fields["_classes"] = out
            else:
                lex.expect("{", f"after Data of List {lname}")
                lex.until("}", f"Data of List {lname}", keep=0)
        else:
            raise lex.error(f"expected Columns, Data or '}}' in List {lname}, found {tok[:40]!r}")


def read_18(lex: Lexer, limits: InputLimits) -> list[WaferRecord]:
    """The wafers of a KLARF 1.8 file (one per WaferRecord; the first token not yet read)."""
    stack: list[_Frame] = []
    wafers: list[WaferRecord] = []
    while True:
        tok = lex.next()
        if tok is None:
            break
        kw = tok.lower()
        if kw == "record":
            line = lex.line
            rtype = _word(lex, "a record type after Record")
            rname = unquote(lex.next()) if lex.peek() not in ("{", None) else None
            lex.expect("{", f"after Record {rtype}")
            if len(stack) >= MAX_DEPTH:
                raise lex.error(f"records nested more than {MAX_DEPTH} deep", line)
            frame = _Frame(rtype.lower(), rname, line, label=rtype)
            if not stack and frame.kind != "filerecord":
                raise lex.error(f"Record {rtype} lies outside the FileRecord", line)
            if frame.kind == "waferrecord":
                if len(wafers) >= limits.max_maps:
                    raise InputTooLarge(lex.name, f"line {line}: holds more than {limits.max_maps} wafers")
                lot = next((f.name for f in reversed(stack) if f.kind == "lotrecord"), None)
                frame.wafer = WaferRecord(line, frame.fields, [f.fields for f in reversed(stack)], rname, lot)
                wafers.append(frame.wafer)
            stack.append(frame)
        elif kw == "field":
            if not stack:
                raise lex.error("Field outside a Record")
            line = lex.line
            fname = _word(lex, "a field name after Field")
            if lex.peek() != "{":
                lex.next()  # the value count
            lex.expect("{", f"after Field {fname}")
            vals = [v for v in lex.until("}", f"Field {fname}", keep=64) if v != ","]
            bad = next((v for v in vals if v == "{" or v.lower() in ("record", "field", "list")), None)
            if bad is not None:
                raise lex.error(f"Field {fname} is not closed by '}}' before {bad!r} (braces unbalanced)", line)
            stack[-1].fields[fname.lower()] = vals
        elif kw == "list":
            if not stack:
                raise lex.error("List outside a Record")
            line = lex.line
            lname = _word(lex, "a list name after List")
            lex.expect("{", f"after List {lname}")
            _list_18(lex, lname, stack, limits, line)
        elif tok == "}":
            if not stack:
                raise lex.error("'}' closes no Record (braces unbalanced)")
            stack.pop()
        elif kw == "endoffile":
            if stack:
                raise lex.error(f"Record {stack[-1].label} is not closed by '}}' before EndOfFile on line {lex.line} "
                                "(braces unbalanced)", stack[-1].line)
            break
        else:
            raise lex.error(f"expected Record, Field, List or '}}', found {tok[:40]!r}")
    if stack:
        raise lex.error(f"Record {stack[-1].label} is not closed by '}}' (braces unbalanced: the file ends at "
                        f"line {lex.line})", stack[-1].line)
    return wafers
