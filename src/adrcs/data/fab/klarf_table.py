"""KLARF tables: `Table` reads the rows of a ``DefectList`` / ``SampleTestPlan`` into float column arrays.

1.2: the values up to the ``;``; 1.8: a ``Data n { row; row; }`` block. Rows are read in batches of `BATCH`
values, keeping only the wanted columns as float arrays, so a table of millions of values never becomes one
Python list. An ``IMAGELIST`` column holds a count ``n`` followed by ``n`` (image id, image type) pairs, so rows
with one are of varying width (and may run over several lines). Die indices (``XINDEX`` / ``YINDEX``) must be
whole numbers. Every refusal is an InputError naming the file and the line.
"""
from __future__ import annotations

import bisect

import numpy as np

from adrcs.data.fab.klarf_lexer import Lexer
from adrcs.errors import InputTooLarge

BATCH = 1 << 18               # table values converted at a time
MAX_INDEX = 1_000_000_000     # |XINDEX| / |YINDEX| beyond this is not a die index
VARIABLE_COLUMNS = frozenset({"IMAGELIST"})
MAX_IMAGES = 10_000           # entries of one defect's IMAGELIST
INDEX_COLUMNS = frozenset({"XINDEX", "YINDEX"})  # die indices: whole numbers


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

    def _leftover(self, toks: list, marks: list, done: int, final: bool) -> tuple[list, list]:
        """The tokens after the first `done` (a row cut by the chunk end) and their line marks, shifted."""
        if final:
            return [], []
        rest = toks[done:]
        keep = [(o - done, ln) for o, ln in marks if o >= done]
        if not keep or keep[0][0] > 0:
            keep.insert(0, (0, self._line_at(marks, done)))
        return rest, keep

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
        return self._leftover(toks, marks, done, final)

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
        return self._leftover(toks, marks, done, final)
