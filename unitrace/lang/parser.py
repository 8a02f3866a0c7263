"""The parse pass: text -> ProbeProgram, by recursive descent. Raises only ProbeError.

    program    := { statement (newline | ";") }
    statement  := "description" STRING | "requires" IDENT {"," IDENT} | "backend" IDENT
                | "assert" expr | probe
    probe      := points [ "/" expr "/" ] [ "{" [ action { ";" action } [";"] ] "}" ]
    points     := POINT { "," POINT }           (a point has no spaces; a comma list continues its kind)
    action     := "print" [ "(" [ args ] ")" ] | "stack" | "ustack" | "kstack"
                | "@" [IDENT] [ "[" args "]" ] "=" aggregate
                | aggregate [ "by" ( key | "(" key { "," key } ")" ) ]
    aggregate  := ("count"|"sum"|"min"|"max"|"avg"|"hist"|"lhist") "(" [ args ] ")"
    expr       := C-like precedence: || && | ^ & (== !=) (< <= > >=) (<< >>) (+ -) (* / %) unary postfix
                  postfix "by" KEY is allowed in assertions: count(syscall:openat) by comm["cc1"]
"""

from __future__ import annotations

import re
from difflib import get_close_matches

from unitrace.errors import ProbeError, Span
from unitrace.lang.lexer import Lexer, Token
from unitrace.model.expr import Binary, Call, Duration, Expr, Index, Int, Name, PointRef, Str, Unary
from unitrace.model.kinds import KINDS, Field, all_kind_names, kind_by_name, split_fields
from unitrace.model.probe import (
    AGGREGATIONS,
    Action,
    AggregateAction,
    Assertion,
    PrintAction,
    Probe,
    ProbePoint,
    ProbeProgram,
    Site,
    StackAction,
)

# (operators, associativity is left) from loosest to tightest
PRECEDENCE: tuple[tuple[str, ...], ...] = (
    ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"), ("+", "-"),
    ("*", "/", "%"),
)
META_KEYWORDS = ("description", "requires", "backend")
MAX_DEPTH = 200


class Parser:
    def __init__(self, text: str, source: str) -> None:
        self.lex = Lexer(text, source)
        self.text = text
        self.source = source
        self.depth = 0
        # Inside /predicate/ a bare `/` ends the predicate; division needs parentheses there.
        self.slash_ends = False
        # `(` tokens not closed yet: an input that ends inside them is reported at the `(`
        self.open_parens: list[Token] = []
        self.in_predicate = False

    # ---- helpers --------------------------------------------------------------------------------
    def error(self, msg: str, tok: Token, hint: str | None = None) -> ProbeError:
        return ProbeError(msg, tok.span, self.text, hint=hint)

    def _unclosed(self, tok: Token) -> None:
        """At the end of the input or line inside `( ...`, the missing `)` is the error, not the token."""
        if self.open_parens and (tok.kind in ("eof", "newline") or tok.text in ("{", "}")):
            hint = "inside ( ), / is division; the predicate ends at the / after the )" \
                if self.in_predicate else None
            raise self.error("this '(' is never closed", self.open_parens[-1], hint=hint)

    def expect(self, text: str, newlines: bool = False) -> Token:
        tok = self.lex.next(newlines)
        if tok.text != text or tok.kind not in ("punct", "ident"):
            self._unclosed(tok)
            what = "end of input" if tok.kind == "eof" else repr(tok.text)
            raise self.error(f"expected {text!r}, found {what}", tok)
        return tok

    def accept(self, text: str, newlines: bool = False) -> Token | None:
        tok = self.lex.peek(newlines)
        if tok.kind in ("punct", "ident") and tok.text == text:
            return self.lex.next(newlines)
        return None

    # ---- program --------------------------------------------------------------------------------
    def program(self) -> ProbeProgram:
        probes: list[Probe] = []
        asserts: list[Assertion] = []
        meta: list[tuple[str, str]] = []
        while True:
            tok = self.lex.peek(newlines=True)
            if tok.kind == "eof":
                break
            if tok.kind == "newline" or tok.text == ";":
                self.lex.next(newlines=True)
                continue
            if tok.kind == "ident" and tok.text in META_KEYWORDS and not self.lex.looking_at_kind():
                meta.append(self.meta())
            elif tok.kind == "ident" and tok.text == "assert" and not self.lex.looking_at_kind():
                asserts.append(self.assertion())
            elif self.lex.looking_at_kind():
                probes.append(self.probe(len(probes)))
            else:
                raise self.error(f"expected a probe (kind:target), an assert or metadata, found {tok.text!r}",
                                 tok, hint="e.g. syscall:openat { print }")
            end = self.lex.peek(newlines=True)
            if end.kind not in ("newline", "eof") and end.text != ";":
                raise self.error(f"unexpected {end.text!r} after the statement", end)
        if not probes and not asserts and not meta:
            raise ProbeError("no probes given", self.lex.span_at(0), self.text,
                             hint="e.g. syscall:openat  (see `unitrace list kinds`)")
        return ProbeProgram(tuple(probes), tuple(asserts), tuple(meta), self.source, self.text)

    def meta(self) -> tuple[str, str]:
        key = self.lex.next()
        if key.text == "description":
            tok = self.lex.next()
            if tok.kind != "string":
                raise self.error("description takes a string", tok)
            return key.text, str(tok.value)
        words = [self._ident("a name").text]
        while key.text == "requires" and self.accept(","):
            words.append(self._ident("a capability").text)
        return key.text, ",".join(words)

    def _ident(self, what: str) -> Token:
        tok = self.lex.next()
        if tok.kind != "ident":
            raise self.error(f"expected {what}, found {tok.text!r}", tok)
        return tok

    def assertion(self) -> Assertion:
        start = self.lex.next()
        expr = self.expr()
        # the text as written, up to the end of the expression (not a comment after it)
        end = self.lex.end_of_last_token()
        return Assertion(expr, self.text[self._offset(start.span): end].strip(), start.span)

    def _offset(self, span: Span) -> int:
        lines = self.text.split("\n")
        return sum(len(ln) + 1 for ln in lines[: span.line - 1]) + span.col - 1

    # ---- probes ---------------------------------------------------------------------------------
    def probe(self, index: int) -> Probe:
        points: list[ProbePoint] = []
        first: Token | None = None
        group: _Group | None = None
        after_comma = False
        while True:
            tok = self.lex.point_spec(newlines=after_comma)
            after_comma = True
            if not tok.text:
                raise self.error("expected a probe point", self.lex.peek())
            first = first or tok
            group = self.points(tok, group, points)
            # `syscall:openat, syscall:read` or `syscall:openat, read` (a comma before a space continues)
            if tok.text.endswith(","):
                continue
            nxt = self.lex.peek()
            if nxt.text == "," and nxt.kind == "punct":
                self.lex.next()
                continue
            break
        predicate = None
        # The predicate and the actions may start on the next line: no statement begins with `/` or `{`.
        nxt = self.lex.peek(newlines=False)
        if nxt.text == "/" and nxt.kind == "punct":
            if nxt.span.line == tok.span.line and nxt.span.col == tok.span.col + tok.span.length:
                raise self.error("put a space between the probe point and its predicate", nxt)
            self.lex.next()
            self.slash_ends = self.in_predicate = True
            try:
                predicate = self.expr()
            finally:
                self.slash_ends = self.in_predicate = False
            end = self.lex.peek()
            if end.text != "/":
                what = "end of input" if end.kind == "eof" else repr(end.text)
                raise self.error(f"expected '/' to end the predicate, found {what}", end,
                                 hint="a predicate is written between slashes: /pid == 1/")
            self.lex.next()
        actions: tuple[Action, ...] = (PrintAction(span=first.span),)
        if self.lex.peek().text == "{":
            actions = self.block()
        return Probe(tuple(points), predicate, actions, first.span, index)

    def points(self, tok: Token, group: _Group | None, out: list[ProbePoint]) -> _Group | None:
        """Read one point token (a comma list) into `out`. A segment that begins `kind:` starts a new kind;
        any other segment continues the kind before it: `syscall:openat,read,tracepoint:sched:sched_switch`.
        Syscall segments in a row form one point (one set, one filter); segments of other kinds are points of
        their own, and one without `:` takes the leading fields of the one before: user:libc:malloc,free."""
        text = tok.text[:-1] if tok.text.endswith(",") else tok.text
        base = self._offset(tok.span)
        groups: list[tuple[_Group, list[Field]]] = []
        for seg in split_fields(text, ",", regex=True):
            word, sep, _ = seg.text.partition(":")
            spec = kind_by_name(word) if sep and not seg.quoted and _KIND_WORD.fullmatch(word) else None
            if spec is not None:
                site = Site.RETURN if word in spec.return_aliases else Site.ENTRY
                group = _Group(spec.name, site)
                skip = len(word) + 1
                groups.append((group, [Field(seg.text[skip:], seg.offset + skip, seg.length - skip)]))
            elif group is None:
                self._unknown_kind(word if sep else seg.text, base + seg.offset)
            elif groups and groups[-1][0] is group:
                groups[-1][1].append(seg)
            else:
                groups.append((group, [seg]))
        for grp, segs in groups:
            spec = KINDS[grp.kind]
            if spec.name == "syscall":
                # one point: from the first pattern to the end of the last
                head, tail = segs[0], segs[-1]
                joined = text[head.offset: tail.offset + tail.length]
                segs = [Field(joined, head.offset, len(joined))]
            prefix = grp.prefix
            for seg in segs:
                target_text, site = _strip_site(seg.text, grp.site)
                span = self.lex.span_at(base + seg.offset, max(1, seg.length))
                if not target_text:
                    raise ProbeError(f"{spec.name} probe without a target", span, self.text,
                                     hint=f"e.g. {spec.example}")
                if site not in spec.sites:
                    raise ProbeError(f"{spec.name} probes have no {site.value} site", span, self.text)
                inherit = prefix if len(split_fields(target_text, ":")) == 1 else ""
                # the parser sees PREFIX + TEXT; shift its span left so its columns still land on TEXT
                shifted = Span(span.line, max(1, span.col - len(inherit)), span.length + len(inherit), span.source)
                target = spec.parse_target(inherit + target_text, shifted, self.text)
                out.append(ProbePoint(spec.name, target, site, span))
                fields = split_fields(inherit + target_text, ":")
                last = fields[-1]
                prefix = (inherit + target_text)[: last.offset] if len(fields) > 1 else ""
            grp.prefix = prefix
        return groups[-1][0] if groups else group

    def _unknown_kind(self, word: str, offset: int) -> None:
        close = get_close_matches(word, all_kind_names(), n=1)
        raise ProbeError(f"unknown probe kind {word!r}", self.lex.span_at(offset, max(1, len(word))),
                         self.text, hint=f"did you mean {close[0]}?" if close else
                         "kinds: " + ", ".join(KINDS) + " (unitrace list kinds)")

    def block(self) -> tuple[Action, ...]:
        self.expect("{")
        actions: list[Action] = []
        while True:
            tok = self.lex.peek()
            if tok.text == "}":
                self.lex.next()
                break
            if tok.text == ";":
                self.lex.next()
                continue
            if tok.kind == "eof":
                raise self.error("missing '}' at the end of the actions", tok)
            actions.append(self.action())
            nxt = self.lex.peek()
            if nxt.kind == "eof":
                raise self.error("missing '}' at the end of the actions", nxt)
            if nxt.text not in (";", "}"):
                raise self.error(f"expected ';' or '}}' after an action, found {nxt.text!r}", nxt)
        return tuple(actions) or (PrintAction(),)

    def action(self) -> Action:
        tok = self.lex.peek()
        if tok.kind == "ident" and tok.text == "print":
            self.lex.next()
            args: tuple[Expr, ...] = ()
            if self.accept("("):
                args = self.args(")")
            return PrintAction(args, tok.span)
        if tok.kind == "ident" and tok.text in ("stack", "ustack", "kstack"):
            self.lex.next()
            which = {"stack": "user", "ustack": "user", "kstack": "kernel"}[tok.text]
            if self.accept("("):
                self.expect(")")
            return StackAction(which, tok.span)
        if tok.text == "@":
            self.lex.next()
            name = ""
            nxt = self.lex.peek()
            # `@n = count()` names the map; `@ = count()` and `@[k] = ...` do not: the name must touch the @
            if nxt.kind == "ident" and nxt.span.line == tok.span.line and nxt.span.col == tok.span.col + 1:
                name = self.lex.next().text
            keys: tuple[Expr, ...] = ()
            if self.accept("["):
                keys = self.args("]")
            self.expect("=")
            agg = self.aggregate()
            return AggregateAction(agg.func, agg.value, keys, name, agg.params, tok.span)
        if tok.kind == "ident" and tok.text in AGGREGATIONS:
            agg = self.aggregate()
            keys = ()
            if self.accept("by"):
                keys = self.args(")") if self.accept("(") else (self.unary(),)
            return AggregateAction(agg.func, agg.value, keys, "", agg.params, tok.span)
        raise self.error(f"unknown action {tok.text!r}", tok,
                         hint="actions: print, stack, kstack, count, sum, min, max, avg, hist, lhist, @name = ...")

    def aggregate(self) -> AggregateAction:
        tok = self._ident("an aggregation")
        if tok.text not in AGGREGATIONS:
            raise self.error(f"unknown aggregation {tok.text!r}", tok, hint=", ".join(AGGREGATIONS))
        self.expect("(")
        args = self.args(")")
        func = tok.text
        if func == "count":
            if args:
                raise self.error("count() takes no argument", tok)
            return AggregateAction(func, None, span=tok.span)
        if func == "lhist":
            if len(args) != 4 or not all(isinstance(a, Int) for a in args[1:]):
                raise self.error("lhist takes a value and three integers: lhist(x, min, max, step)", tok)
            lo, hi, step = (a.value for a in args[1:])  # type: ignore[attr-defined]
            if step <= 0 or hi <= lo:
                raise self.error("lhist needs min < max and step > 0", tok)
            return AggregateAction(func, args[0], params=(lo, hi, step), span=tok.span)
        if len(args) != 1:
            raise self.error(f"{func}() takes one value", tok)
        return AggregateAction(func, args[0], span=tok.span)

    def args(self, close: str) -> tuple[Expr, ...]:
        out: list[Expr] = []
        if self.accept(close):
            return ()
        while True:
            out.append(self.expr())
            if self.accept(close):
                return tuple(out)
            tok = self.lex.peek()
            if tok.text != ",":
                what = "end of input" if tok.kind == "eof" else repr(tok.text)
                raise self.error(f"expected ',' or {close!r}, found {what}", tok)
            self.lex.next()

    # ---- expressions ----------------------------------------------------------------------------
    def expr(self) -> Expr:
        return self.binary(0)

    def binary(self, level: int) -> Expr:
        if level == len(PRECEDENCE):
            return self.unary()
        left = self.binary(level + 1)
        ops = PRECEDENCE[level]
        while True:
            tok = self.lex.peek()
            if tok.kind == "punct" and tok.text in ops and not (tok.text == "/" and self.slash_ends):
                self.lex.next()
                right = self.binary(level + 1)
                left = Binary(tok.span, tok.text, left, right)
            else:
                return left

    def unary(self) -> Expr:
        tok = self.lex.peek()
        if tok.kind == "punct" and tok.text in ("!", "-", "~"):
            self.lex.next()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error("expression nested too deeply", tok)
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if tok.text == "-" and isinstance(operand, Int):
                return Int(tok.span, -operand.value)
            return Unary(tok.span, tok.text, operand)
        return self.postfix()

    def postfix(self) -> Expr:
        expr = self.primary()
        while True:
            tok = self.lex.peek()
            if tok.kind == "punct" and tok.text == "[":
                self.lex.next()
                key = self.expr()
                self.expect("]")
                expr = Index(tok.span, expr, key)
            elif tok.kind == "ident" and tok.text == "by" and isinstance(expr, Call):
                self.lex.next()
                key = self.postfix_key()
                expr = Call(tok.span, "by", (expr, key))
            else:
                return expr

    def postfix_key(self) -> Expr:
        key = self.primary()
        if self.accept("["):
            value = self.expr()
            self.expect("]")
            return Index(key.span, key, value)
        return key

    def primary(self) -> Expr:
        tok = self.lex.peek()
        if tok.kind == "int":
            self.lex.next()
            return Int(tok.span, int(tok.value))  # type: ignore[call-overload]
        if tok.kind == "duration":
            self.lex.next()
            return Duration(tok.span, int(tok.value), tok.text)  # type: ignore[call-overload]
        if tok.kind == "string":
            self.lex.next()
            return Str(tok.span, str(tok.value))
        if tok.kind == "punct" and tok.text == "(":
            self.lex.next()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error("expression nested too deeply", tok)
            saved, self.slash_ends = self.slash_ends, False
            self.open_parens.append(tok)
            try:
                inner = self.expr()
                self.expect(")")
            finally:
                self.depth -= 1
                self.slash_ends = saved
                self.open_parens.pop()
            return inner
        if tok.kind == "ident":
            if self.lex.looking_at_kind() and kind_by_name(tok.text) is not None:
                point = self.lex.point_ref()
                return PointRef(point.span, point.text)
            self.lex.next()
            if self.lex.peek().text == "(" and not self.text[self.lex.pos:self.lex.pos + 1].isspace():
                self.lex.next()
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise self.error("expression nested too deeply", tok)
                try:
                    args = self.args(")")
                finally:
                    self.depth -= 1
                return Call(tok.span, tok.text, args)
            return Name(tok.span, tok.text)
        self._unclosed(tok)
        what = "end of input" if tok.kind == "eof" else repr(tok.text)
        raise self.error(f"expected a value, found {what}", tok)


class _Group:
    """The kind a comma list is in, and the fields a following segment without `:` inherits."""

    __slots__ = ("kind", "prefix", "site")

    def __init__(self, kind: str, site: Site) -> None:
        self.kind = kind
        self.site = site
        self.prefix = ""


_KIND_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _strip_site(text: str, site: Site) -> tuple[str, Site]:
    for suffix, s in (("%return", Site.RETURN), ("%entry", Site.ENTRY)):
        if text.endswith(suffix):
            return text[: -len(suffix)], s
    return text, site


def parse(text: str, source: str = "<command line>") -> ProbeProgram:
    try:
        return Parser(text, source).program()
    except RecursionError:
        raise ProbeError("expression nested too deeply", Span(1, 1, 1, source), text) from None
