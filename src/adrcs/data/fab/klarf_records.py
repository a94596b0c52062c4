"""KLARF structure for ``adrcs.data.formats.klarf``: 1.1 / 1.2 statements and 1.8 records, one `WaferRecord` a wafer.

`read_12` (flat ``Keyword values;`` statements, a new wafer at each ``WaferID``; lot statements after a wafer's
``DefectList`` belong to the wafers that follow) and `read_18` (``Record`` / ``Field`` / ``List`` nesting, a
wafer per ``WaferRecord``, fields inherited from the enclosing records) read the tokens of a `Lexer`
(``klarf_lexer``), the defect and plan tables with `Table` (``klarf_table``), and give one `WaferRecord` per
wafer. Every refusal is an InputError naming the file and the line.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from adrcs.data.fab.klarf_lexer import Lexer, text_of, unquote
from adrcs.data.fab.klarf_table import Table
from adrcs.data.limits import InputLimits
from adrcs.errors import InputTooLarge

MAX_DEFECTS = 100_000        # per wafer
MAX_DEPTH = 32               # KLARF 1.8 record nesting
DEFECT_COLUMNS = ("XINDEX", "YINDEX", "XREL", "YREL", "XSIZE", "YSIZE", "CLASSNUMBER")
PLAN_COLUMNS = ("XINDEX", "YINDEX")
# 1.2 statements that describe the lot: after a wafer's DefectList they belong to the wafers that follow
_LOT_LEVEL = {"fileversion", "filetimestamp", "inspectionstationid", "sampletype", "resulttimestamp", "lotid",
              "samplesize", "deviceid", "setupid", "stepid", "sampleorientationmarktype", "orientationmarklocation",
              "diepitch", "dieorigin"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


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
