"""KLARF tokens: `Lexer` and the helpers that read field values (`unquote`, `text_of`, `numbers`, `iso_time`).

`Lexer` streams a KLARF file as tokens with line numbers: words and numbers, quoted strings (kept with their
quotes), and the punctuation ``{ } ; ,``. It reads the decompressed bytes in 1 MiB chunks and never holds more
than one chunk plus one line; CRLF, a UTF-8 BOM and any leading whitespace are accepted. Every refusal is an
InputError naming the file and the line.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import BinaryIO, Iterator

from adrcs.errors import InputError

CHUNK = 1 << 20
MAX_LINE = 16 << 20           # longest line accepted (characters)
_TOKEN = re.compile(r'"[^"\n]*"?|[{};,]|[^\s{};,"]+')
_PUNCT = ";{},"


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
