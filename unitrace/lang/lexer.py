"""Tokens of the probe language, with exact source positions.

Probe points are not tokenised like expressions: `user:/usr/lib/libc.so.6:malloc` or `syscall:/^open/`
contain characters that are operators elsewhere, so the parser asks for a raw point spec (`point_spec`) where
a probe begins, and for ordinary tokens (`next`) everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from unitrace.errors import ProbeError, Span
from unitrace.model.kinds import scan_quoted, scan_regex

PUNCT3: tuple[str, ...] = ()
PUNCT2 = ("==", "!=", "<=", ">=", "&&", "||", "<<", ">>")
PUNCT1 = "{}()[],;/@=<>!~&|^+-*%:."
UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
# ASCII only: str.isdigit() accepts '²' and str.isalpha() accepts any script, which int() and C do not.
DIGITS = frozenset("0123456789")
IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
IDENT_CHARS = IDENT_START | DIGITS
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "ident", "int", "duration", "string", "punct", "newline", "eof", "point"
    text: str
    value: object
    span: Span


class Lexer:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self._peeked: Token | None = None

    # ---- positions ------------------------------------------------------------------------------
    def span_at(self, pos: int, length: int = 1) -> Span:
        line = self.text.count("\n", 0, pos) + 1
        start = self.text.rfind("\n", 0, pos) + 1
        return Span(line, pos - start + 1, max(1, length), self.source)

    def error(self, message: str, pos: int, length: int = 1, hint: str | None = None) -> ProbeError:
        return ProbeError(message, self.span_at(pos, length), self.text, hint=hint)

    # ---- whitespace and comments ----------------------------------------------------------------
    def _skip(self, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif c == "\\" and text.startswith("\\\n", self.pos):
                self.pos += 2  # a backslash joins lines
            elif c in " \t\r" or (newlines and c == "\n"):
                self.pos += 1
            else:
                break

    def at_space(self) -> bool:
        self._unpeek()
        return self.pos < len(self.text) and self.text[self.pos] in " \t\r\n#"

    def _unpeek(self) -> None:
        """Forget a peeked token and go back to where it began (raw scans start from there)."""
        if self._peeked is not None:
            self.pos = self._peek_from
            self._peeked = None

    # ---- raw point specs ------------------------------------------------------------------------
    def end_of_last_token(self) -> int:
        self._unpeek()
        return self.pos

    def point_spec(self, newlines: bool = False) -> Token:
        """`kind:target[%return]` up to whitespace, `{`, `;` or end; commas included (lists). After a comma
        that ends a line, the list goes on on the next line (newlines=True)."""
        self._unpeek()
        self._skip(newlines=newlines)
        return self._scan_point(in_expr=False)

    def point_ref(self) -> Token:
        """A probe point inside an expression (`count(syscall:openat,creat)`): also ends at `)` and at a
        comma followed by a space (the next argument)."""
        self._unpeek()
        self._skip(newlines=True)
        return self._scan_point(in_expr=True)

    def _scan_point(self, in_expr: bool) -> Token:
        """A point has no spaces, except inside a double-quoted field or a /regex/ that opens a field; those
        are skipped whole so that `syscall:/^(open|stat)/` or `user:"/opt/my app":main` stay one point."""
        text = self.text
        start = self.pos
        depth = 0
        while self.pos < len(text):
            c = text[self.pos]
            field_start = self.pos > start and text[self.pos - 1] in ":,!"
            if c in "/\"" and field_start:
                end = (scan_regex if c == "/" else scan_quoted)(text, self.pos)
                if end > 0:
                    self.pos = end
                    continue
            if c in " \t\r\n{;#":
                break
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and in_expr and depth == 0 and (
                    self.pos + 1 >= len(text) or text[self.pos + 1] in " \t\r\n),"):
                break
            self.pos += 1
        return Token("point", text[start:self.pos], text[start:self.pos], self.span_at(start, self.pos - start))

    # ---- ordinary tokens ------------------------------------------------------------------------
    def peek(self, newlines: bool = False) -> Token:
        if self._peeked is None:
            save = self.pos
            self._peeked = self._lex(newlines)
            self._peek_from = save
            self._peek_newlines = newlines
        elif self._peek_newlines != newlines:
            self.pos = self._peek_from
            self._peeked = None
            return self.peek(newlines)
        return self._peeked

    def next(self, newlines: bool = False) -> Token:
        tok = self.peek(newlines)
        self._peeked = None
        return tok

    def looking_at_kind(self) -> bool:
        """Is the next thing `ident:` with no space (the start of a probe point)?"""
        self._unpeek()
        self._skip(newlines=True)
        i = self.pos
        text = self.text
        while i < len(text) and text[i] in IDENT_CHARS:
            i += 1
        return i > self.pos and i < len(text) and text[i] == ":" and text[self.pos] not in DIGITS

    def _lex(self, newlines: bool) -> Token:
        self._skip(newlines=not newlines)
        text = self.text
        if self.pos >= len(text):
            return Token("eof", "", None, self.span_at(max(0, len(text) - 1) if text else 0))
        start = self.pos
        c = text[start]
        if c == "\n":
            self.pos += 1
            return Token("newline", "\n", None, self.span_at(start))
        if c in IDENT_START:
            while self.pos < len(text) and text[self.pos] in IDENT_CHARS:
                self.pos += 1
            word = text[start:self.pos]
            return Token("ident", word, word, self.span_at(start, len(word)))
        if c in DIGITS:
            return self._number(start)
        if c == '"':
            return self._string(start)
        two = text[start:start + 2]
        if two in PUNCT2:
            self.pos += 2
            return Token("punct", two, two, self.span_at(start, 2))
        if c in PUNCT1:
            self.pos += 1
            return Token("punct", c, c, self.span_at(start))
        raise self.error(f"unexpected character {c!r}", start)

    def _number(self, start: int) -> Token:
        text = self.text
        if text.startswith(("0x", "0X"), start):
            self.pos = start + 2
            while self.pos < len(text) and text[self.pos] in "0123456789abcdefABCDEF_":
                self.pos += 1
            digits = text[start + 2:self.pos].replace("_", "")
            if not digits:
                raise self.error("a hex number needs digits after 0x", start, 2)
            value = int(digits, 16)
        else:
            while self.pos < len(text) and (text[self.pos] in DIGITS or text[self.pos] == "_"):
                self.pos += 1
            value = int(text[start:self.pos].replace("_", ""))
        unit_start = self.pos
        while self.pos < len(text) and text[self.pos] in IDENT_START:
            self.pos += 1
        unit = text[unit_start:self.pos]
        if unit:
            if unit in ("K", "M", "G"):
                value *= {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]
            elif unit not in UNITS:
                raise self.error(f"unknown unit {unit!r}", unit_start, len(unit),
                                 hint="durations take ns, us, ms or s; sizes K, M or G")
            else:
                return Token("duration", text[start:self.pos], value * UNITS[unit],
                             self.span_at(start, self.pos - start))
        return Token("int", text[start:self.pos], value, self.span_at(start, self.pos - start))

    def _string(self, start: int) -> Token:
        text = self.text
        self.pos = start + 1
        out: list[str] = []
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.error("unterminated string", start, max(1, self.pos - start))
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                break
            if c == "\\":
                if self.pos + 1 >= len(text):
                    raise self.error("unterminated string", start, self.pos - start)
                e = text[self.pos + 1]
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                    self.pos += 2
                elif e == "x" and self.pos + 3 < len(text) + 0 and all(
                        ch in "0123456789abcdefABCDEF" for ch in text[self.pos + 2:self.pos + 4]) and \
                        len(text[self.pos + 2:self.pos + 4]) == 2:
                    out.append(chr(int(text[self.pos + 2:self.pos + 4], 16)))
                    self.pos += 4
                else:
                    raise self.error(f"unknown escape \\{e}", self.pos, 2)
                continue
            out.append(c)
            self.pos += 1
        return Token("string", text[start:self.pos], "".join(out), self.span_at(start, self.pos - start))
