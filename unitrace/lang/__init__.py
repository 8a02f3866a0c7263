"""The probe language: parse one-liners and probe files into the probe model, resolve names, print back.

    parse_program(text, source)   a probe file (or any text) -> ProbeProgram
    parse_probe_args(args)        command-line one-liners, one or more probes per argument
    parse_predicate(text)         a bare predicate (the TUI's filter bar)
    resolve(program)              expand syscall patterns, constants, check names (did you mean ...)
    format_expr(expr)             an expression back to source text
"""

from __future__ import annotations

from unitrace.errors import ProbeError, Span
from unitrace.lang.format import format_expr
from unitrace.lang.parser import Parser, parse
from unitrace.lang.passes import dump, resolve
from unitrace.model.expr import Expr
from unitrace.model.probe import ProbeProgram


def parse_program(text: str, source: str = "<command line>") -> ProbeProgram:
    program = parse(text, source)
    dump("parse", program)
    return program


def parse_probe_args(args: list[str]) -> ProbeProgram:
    """Each command-line argument holds one or more probes; they are parsed as one program (newline-joined)
    so that errors point at the argument and column the user typed."""
    if not args:
        raise ProbeError("no probes given", Span(1, 1), "", hint="e.g. unitrace trace syscall:openat -- ls")
    text = "\n".join(args)
    return parse_program(text, "<command line>")


def parse_predicate(text: str, source: str = "<filter>") -> Expr:
    parser = Parser(text, source)
    try:
        expr = parser.expr()
    except RecursionError:
        raise ProbeError("expression nested too deeply", Span(1, 1, 1, source), text) from None
    tok = parser.lex.peek(newlines=True)
    if tok.kind not in ("eof", "newline"):
        raise parser.error(f"unexpected {tok.text!r} after the expression", tok)
    return expr


__all__ = ["format_expr", "parse_predicate", "parse_probe_args", "parse_program", "resolve"]
