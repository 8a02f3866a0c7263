"""bpf backend pieces that need no kernel: the record layout, C lowering of predicates, C literals."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from unitrace.backends.bpf import record
from unitrace.backends.bpf.cgen import NotInKernel, Scope, c_int, c_string, lower, split
from unitrace.errors import Span
from unitrace.model.expr import Binary, Duration, Int, Name, Str, Unary

S = Span(1, 1)
SCOPE = Scope(names={"pid": "tgid", "ret": "ret", "duration": "(now - f->ts)", "arg0": "f->args[0]"},
              strings={"comm": "comm"})


def test_record_offsets_match_the_c_compiler(tmp_path: Path) -> None:
    """The C struct and the Python decoder come from one declaration; gcc confirms every offset."""
    fields = [name for name, _, _ in record.RECORD_FIELDS]
    prints = "\n".join(f'    printf("{n} %zu\\n", offsetof(struct ut_record, {n}));' for n in fields)
    src = textwrap.dedent("""
        #include <stddef.h>
        #include <stdio.h>
        #include <stdint.h>
        typedef uint64_t u64; typedef int64_t s64; typedef uint32_t u32; typedef int32_t s32;
    """) + record.c_struct() + f"\nint main(void) {{\n{prints}\n    printf(\"size %zu\\n\", sizeof(struct ut_record));\n}}\n"
    (tmp_path / "r.c").write_text(src)
    subprocess.run(["gcc", "-o", str(tmp_path / "r"), str(tmp_path / "r.c")], check=True)
    out = subprocess.run([str(tmp_path / "r")], capture_output=True, text=True, check=True).stdout
    c_offsets = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}
    assert c_offsets.pop("size") == record.RECORD.size
    assert c_offsets == record.python_offsets()


def test_record_round_trip() -> None:
    values = []
    for name, _, code in record.RECORD_FIELDS:
        if code.endswith("s"):
            values.append(name.encode().ljust(int(code[:-1]), b"\0"))
        elif code[:-1].isdigit():
            values.extend(range(int(code[:-1])))
        else:
            values.append(len(name))
    rec = record.unpack(record.RECORD.pack(*values))
    assert rec["args"] == (0, 1, 2, 3, 4, 5)
    assert rec["ts"] == 2 and rec["probe"] == 5
    assert rec["comm"].startswith(b"comm")


@pytest.mark.parametrize(("text", "literal"), [
    ("cat", '"cat"'),
    ('a"b', '"a\\"b"'),
    ("back\\slash", '"back\\\\slash"'),
    ("nl\n", '"nl\\012"'),
    ("??=", '"\\077\\077="'),  # no trigraphs
    ("é", '"\\303\\251"'),
])
def test_c_string_literals(text: str, literal: str) -> None:
    assert c_string(text) == literal


def test_c_int_literals() -> None:
    assert c_int(5) == "5LL"
    assert c_int(-2) == "(-2LL)"
    assert c_int(1 << 63) == f"{1 << 63}ULL"


def test_lowering_predicates() -> None:
    expr = Binary(S, "&&", Binary(S, "==", Name(S, "comm"), Str(S, "cat")),
                  Binary(S, ">", Name(S, "duration"), Duration(S, 2_000_000, "2ms")))
    assert lower(expr, SCOPE) == ('(ut_str_eq(comm, "cat", 4) && (((s64)((now - f->ts))) > 2000000LL))')
    assert lower(Binary(S, "!=", Name(S, "comm"), Str(S, "ba*")), SCOPE) == '!ut_str_eq(comm, "ba", 2)'
    assert lower(Unary(S, "!", Binary(S, "<", Name(S, "ret"), Int(S, 0))), SCOPE) == "(!(((s64)(ret)) < 0LL))"
    # division by zero cannot happen in the kernel: it yields 0
    assert lower(Binary(S, "/", Name(S, "arg0"), Name(S, "ret")), SCOPE) == \
        "(((s64)(ret)) ? (((s64)(f->args[0])) / ((s64)(ret))) : 0)"


def test_what_the_kernel_cannot_do_stays_in_user_space() -> None:
    inner_glob = Binary(S, "==", Name(S, "comm"), Str(S, "*sh"))
    with pytest.raises(NotInKernel):
        lower(inner_glob, SCOPE)
    cond, residual = split(Binary(S, "&&", Binary(S, "==", Name(S, "pid"), Int(S, 7)), inner_glob), SCOPE)
    assert cond == "(((s64)(tgid)) == 7LL)"
    assert residual is inner_glob
    cond, residual = split(Binary(S, "==", Name(S, "nosuch"), Int(S, 1)), SCOPE)
    assert cond == "1" and residual is not None
