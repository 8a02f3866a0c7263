"""The probe language: parse one-liners and probe files into the probe model, resolve names, print back.

    parse_program(text, source)   a probe file (or any text) -> ProbeProgram          (the parse pass)
    parse_probe_args(args)        command-line one-liners, one or more probes per argument
    parse_predicate(text)         a bare predicate (the TUI's filter bar)
    resolve(program)              the resolve pass (syscall sets, constants) then the check pass (names,
                                  sites, types), "did you mean" on unknown names
    check(program)                the check pass alone
    format_expr(expr)             an expression back to source text

Every function raises only ProbeError for bad input. `dump_ast="parse"|"resolve"|"check"|"all"` (or the
UNITRACE_DUMP_AST environment variable) prints the tree after that pass to stderr.
"""

from __future__ import annotations

from unitrace.errors import ProbeError, Span
from unitrace.lang.format import format_expr
from unitrace.lang.parser import Parser, parse
from unitrace.lang.passes import check, dump, format_tree, resolve, resolve_names
from unitrace.model.expr import Expr
from unitrace.model.probe import ProbeProgram


def parse_program(text: str, source: str = "<command line>", *, dump_ast: str | None = None) -> ProbeProgram:
    program = parse(text, source)
    dump("parse", program, dump_ast)
    return program


def parse_probe_args(args: list[str], *, dump_ast: str | None = None) -> ProbeProgram:
    """Each command-line argument holds one or more probes; the arguments are parsed as one program, one
    argument per line, so that an error names the argument (as its line) and the column the user typed.
    A predicate or action block may be an argument of its own: `syscall:openat '/pid == 1/'`."""
    if not args:
        raise ProbeError("no probes given", Span(1, 1), "", hint="e.g. unitrace trace syscall:openat -- ls")
    return parse_program("\n".join(args), "<command line>", dump_ast=dump_ast)


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


__all__ = ["check", "format_expr", "format_tree", "parse_predicate", "parse_probe_args", "parse_program",
           "resolve", "resolve_names"]
