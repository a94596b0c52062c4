"""What the XML bin-map formats (SEMI E142, SEMI G85) share: a safe parse, names without namespaces, bin codes.

* `parse`: the document read with ``defusedxml`` from the (size-capped) stream in chunks: a document type
  declaration (``<!DOCTYPE``, so any entity declaration, billion laughs or external entity) is refused
  before anything is expanded; each element's line is kept for error messages.
* Element and attribute names are matched by their local name, case-insensitively (``{urn:semi-org:...}Map``,
  ``map`` and ``Map`` are all ``map``).
* Bin codes: ``BinType`` ``ASCII`` (one character a die: the bin is its character code), ``Decimal``,
  ``HexaDecimal`` (two hex digits a die) and ``Integer2`` (four hex digits). A row holding white space is
  split on it (G85 writers space their codes, E142 ones usually do not); otherwise it is cut into codes of the
  type's width (Decimal: the row's length over the column count).
* Bin qualities: ``Pass`` (or ``Good``) passes, ``Null`` is no die, ``Unknown`` / ``Untested`` / ``NotTested``
  / ``Skip`` / ``NotProcessed`` / ``NotInspected`` are dies on the wafer that were not tested (status 3), every
  other quality (``Fail``, ...) and a code without a definition fail. With ``FabOptions.good_bins`` the listed
  bins pass and the other tested bins fail.
"""
from __future__ import annotations

import re
from typing import Any, BinaryIO, Iterable
from xml.etree.ElementTree import Element, TreeBuilder

import numpy as np
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import DefusedXMLParser

from adrcs.data.fab.wafer_grid import FAIL, PASS, UNTESTED
from adrcs.errors import InputError, InputTooLarge

CHUNK = 1 << 16
MAX_CODE_CHARS = 6  # keeps every bin inside int32
TYPE_WIDTH = {"ascii": 1, "decimal": 3, "hexadecimal": 2, "hex": 2, "integer2": 4}
UNTESTED_QUALITIES = {"unknown", "untested", "nottested", "notprocessed", "skip", "skipped", "notinspected",
                      "uninspected"}
NONE_ = 0  # status of a position without a die


class XmlDoc:
    """A parsed document: its root element and the line each element starts on."""

    def __init__(self, root: Element, lines: dict[int, int]) -> None:
        self.root, self._lines = root, lines

    def line(self, el: Element | None) -> int:
        return self._lines.get(id(el), 0) if el is not None else 0


class _LineTarget:
    """A TreeBuilder that notes the line of every start tag."""

    def __init__(self) -> None:
        self.builder, self.lines, self.parser = TreeBuilder(), {}, None

    def start(self, tag: str, attrib: dict) -> Element:
        el = self.builder.start(tag, attrib)
        self.lines[id(el)] = self.parser.parser.CurrentLineNumber if self.parser is not None else 0
        return el

    def end(self, tag: str) -> Element:
        return self.builder.end(tag)

    def data(self, text: str) -> None:
        self.builder.data(text)

    def close(self) -> Element:
        return self.builder.close()


def parse(stream: BinaryIO, name: str) -> XmlDoc:
    """The document of `stream`; InputError (one line, with the line number) for XML that is not well formed or
    that declares a DTD or entities."""
    target = _LineTarget()
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.parser = parser
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            parser.feed(chunk)
        root = parser.close()
    except DefusedXmlException as e:
        line = parser.parser.CurrentLineNumber
        if isinstance(e, DTDForbidden):
            what = f"a document type declaration (<!DOCTYPE {e.name}>)"
        elif isinstance(e, EntitiesForbidden):
            what = f"an entity declaration ({e.name!r})"
        else:
            what = "a reference to an external entity"
        raise InputError(name, f"line {line}: refused: the XML holds {what}; wafer-map XML needs no DTD or "
                               "entities, which can expand without bound or read other files") from None
    except SyntaxError as e:  # xml.etree ParseError
        pos = getattr(e, "position", None)
        where = f"line {pos[0]}: " if pos else ""
        msg = str(e).split(":")[0].strip() or "syntax error"
        raise InputError(name, f"{where}is not well-formed XML ({msg})") from None
    return XmlDoc(root, target.lines)


# ---------------------------------------------------------------- names


def local(tag: Any) -> str:
    """Lower-case local name of an element tag or attribute name (namespace dropped)."""
    return str(tag).rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def children(el: Element | None, name: str) -> list[Element]:
    return [] if el is None else [c for c in el if local(c.tag) == name]


def child(el: Element | None, name: str) -> Element | None:
    return next(iter(children(el, name)), None)


def descendants(el: Element, name: str) -> list[Element]:
    return [c for c in el.iter() if local(c.tag) == name]


def attr(el: Element | None, name: str, strip: bool = True) -> str | None:
    """An attribute by local name, case-insensitive; None when absent or blank."""
    if el is None:
        return None
    for k, v in el.attrib.items():
        if local(k) == name:
            v = v.strip() if strip else v
            return v if v != "" else None
    return None


def text(el: Element | None) -> str | None:
    t = (el.text or "").strip() if el is not None else ""
    return t or None


def number(value: str | None) -> int | float | str | None:
    """A number from attribute text (int when whole), else the text itself."""
    if value is None:
        return None
    try:
        v = float(value)
    except ValueError:
        return value
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v


# ---------------------------------------------------------------- bin codes


def bin_kind(bin_type: str | None) -> str:
    k = re.sub(r"[^a-z0-9]", "", (bin_type or "hexadecimal").lower())
    return k if k in TYPE_WIDTH else ""


def code_value(code: str, kind: str) -> int:
    """The bin number of one code; ValueError when it is not a code of `kind`."""
    if kind == "ascii":
        if len(code) != 1:
            raise ValueError(code)
        return ord(code)
    if not code or len(code) > MAX_CODE_CHARS:
        raise ValueError(code)
    if kind == "decimal":
        if not code.isascii() or not code.isdigit():
            raise ValueError(code)
        return int(code)
    if not re.fullmatch(r"[0-9A-Fa-f]+", code):
        raise ValueError(code)
    return int(code, 16)


def decode_rows(rows: list[tuple[str | None, int]], kind: str, cols: int | None, name: str, where: str,
                max_cols: int) -> np.ndarray:
    """(rows, cols) bin numbers of the row texts (text, line); InputError naming the line of a bad row or code,
    InputTooLarge for a row longer than `max_cols` codes."""
    width = TYPE_WIDTH[kind]
    tokens: list[list[str]] = []
    for raw, line in rows:
        if len(raw or "") > (max_cols + 1) * (MAX_CODE_CHARS + 1) + 1000:
            raise InputTooLarge(name, f"line {line}: {where}: a row of {len(raw or '')} characters, longer than "
                                      f"{max_cols} codes (the limit per side)")
        t = (raw or "").strip()
        if kind == "ascii" and cols and len((raw or "").strip("\r\n")) == cols:
            toks = list((raw or "").strip("\r\n"))  # a space may be a code
        elif not t:
            raise InputError(name, f"line {line}: {where}: an empty row")
        elif re.search(r"\s", t):
            toks = t.split()
        else:
            w = len(t) // cols if kind == "decimal" and cols and len(t) % cols == 0 else width
            if len(t) % w:
                raise InputError(name, f"line {line}: {where}: a row of {len(t)} characters is no whole number "
                                       f"of {w}-character codes")
            toks = [t[i: i + w] for i in range(0, len(t), w)] if w > 1 else list(t)
        if len(toks) > max_cols:
            raise InputTooLarge(name, f"line {line}: {where}: a row of {len(toks)} codes, more than the limit of "
                                      f"{max_cols} per side")
        n = cols if cols else (len(tokens[0]) if tokens else len(toks))
        if len(toks) != n:
            stated = "the map has" if cols else "the first row has"
            raise InputError(name, f"line {line}: {where}: a row of {len(toks)} codes where {stated} {n} columns")
        tokens.append(toks)
    grid = np.array(tokens, dtype=str)
    uniq, inv = np.unique(grid, return_inverse=True)
    values = np.empty(len(uniq), np.int64)
    for i, u in enumerate(uniq.tolist()):
        try:
            values[i] = code_value(u, kind)
        except ValueError:
            r = int(np.argwhere(grid == u)[0][0])
            raise InputError(name, f"line {rows[r][1]}: {where}: {u!r} is not a {kind} bin code") from None
    return values[inv.reshape(grid.shape)]


def parse_code(code: str | None, kind: str, name: str, line: int, what: str) -> int | None:
    if code is None:
        return None
    try:
        return code_value(code if kind == "ascii" else code.strip(), kind)
    except ValueError:
        raise InputError(name, f"line {line}: {what} {code!r} is not a {kind} bin code") from None


def statuses(values: np.ndarray, null: int | None, quality: dict[int, str],
             good_bins: Iterable[int] | None) -> np.ndarray:
    """Per die position: 0 no die, 1 pass, 2 fail, 3 untested (see the module text)."""
    uniq, inv = np.unique(values, return_inverse=True)
    good = None if good_bins is None else {int(b) for b in good_bins}
    out = np.empty(len(uniq), np.uint8)
    for i, v in enumerate(uniq.tolist()):
        q = re.sub(r"[^a-z]", "", quality.get(v, "").lower())
        if v == null or q == "null":
            out[i] = NONE_
        elif q in UNTESTED_QUALITIES:
            out[i] = UNTESTED
        elif good is not None:
            out[i] = PASS if v in good else FAIL
        else:
            out[i] = PASS if q in ("pass", "good") else FAIL
    return out[inv.reshape(values.shape)]


# ---------------------------------------------------------------- die coordinates


def placement(rows: int, cols: int, origin: str | None,
              axis: str | None) -> tuple[np.ndarray, np.ndarray, bool, bool, tuple[int, int, int, int]]:
    """Die coordinates of every grid position for E142 ``OriginLocation`` / ``AxisDirection``.

    The picture is always the file's rows as written (first row on top, first code on the left); these only set
    which die coordinates the positions carry (the placement columns ``die_x0``, ``die_y0``, ``flip_x``,
    ``flip_y``). Returns (x per column, y per row, flip_x, flip_y, extent)."""
    o = re.sub(r"[^a-z]", "", (origin or "").lower()).removeprefix("to")
    a = re.sub(r"[^a-z]", "", (axis or "").lower())
    if not a:
        a = {"upperleft": "downright", "upperright": "downleft", "lowerright": "upleft"}.get(o, "upright")
    if not o:
        o = {"downright": "upperleft", "downleft": "upperright", "upleft": "lowerright"}.get(a, "lowerleft")
    sx = -1 if a.endswith("left") else 1
    sy = 1 if a.startswith("down") else -1
    cx = cols // 2 if o == "center" else (cols - 1 if o.endswith("right") else 0)
    cy = rows // 2 if o == "center" else (rows - 1 if o.startswith("lower") else 0)
    xs = sx * (np.arange(cols) - cx)
    ys = sy * (np.arange(rows) - cy)
    extent = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    return xs.astype(np.int64), ys.astype(np.int64), sx < 0, sy < 0, extent


__all__ = ["XmlDoc", "parse", "local", "child", "children", "descendants", "attr", "text", "number", "bin_kind",
           "code_value", "decode_rows", "parse_code", "statuses", "placement", "UNTESTED_QUALITIES"]
