"""Any input gives reports or an empty list ("not a kernel report"), never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kmsg_support import FIXTURES
from unitrace.kmsg import decode_records, decode_text
from unitrace.kmsg.render import render_text, to_json

KERNELISH = [
    "WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2", "------------[ ftrace bug ]------------",
    "------------[ cut here ]------------", "ftrace failed to modify", "ftrace faulted on writing",
    "[<ffffffff81000000>] f+0x0/0x10", "[] g+0x1/0x2 [mod]", " actual:   ffffffe8:00:ff", " actual: zz:12",
    "expected: 0f:1f", "ftrace record flags: ffffffff", " (4294967295) R O", " expected tramp: ffff",
    "Call Trace:", "<IRQ>", "</IRQ>", "<EOI>", "<TASK>", "? h+0x5/0x9", "RIP: 0010:f+0x1/0x2", "RIP: 0033:0x1",
    "Code: 00 <0f> 0b", "NIP [c000] x+0x1/0x2", "pc : f+0x0/0x4", "epc : ffffffff80000000 ra : 0 sp : 1",
    "---[ end trace 0000000000000000 ]---", "CPU: 1 PID: 2 Comm: x Tainted: G W O 6.1.0 #1",
    "[<c0314a49>] (unwind_backtrace) from [<c03115e9>] (show_stack+0x11/0x14)", "Setting ftrace call site to NOP",
    "Kernel panic - not syncing: x", "BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "Oops: 0002 [#1] SMP", "x29: ffff x28: 0000", "Tainted: [W]=WARN, [O]=OOT_MODULE", "ftrace-powerpc: x",
    "[  T650] ", "[   12.345678] ", "> ", "=", "=3D", "\t", "\x00", "\u202e", "ftrace failed to modify [<>] 0x",
]


def _assert_decodes(text: str) -> None:
    reports = decode_text(text, local=False)
    assert isinstance(reports, list)
    for r in reports:
        render_text(r)
    to_json(reports)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    _assert_decodes(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(KERNELISH), st.text(max_size=30)), max_size=40),
       st.lists(st.sampled_from(["", "> ", "[    1.000000] ", "[  T1] ", "<4>", "Jan  1 00:00:00 h kernel: "]),
                min_size=1, max_size=3))
def test_kernel_like_lines(parts: list[str], prefixes: list[str]) -> None:
    lines = [prefixes[i % len(prefixes)] + p for i, p in enumerate(parts)]
    _assert_decodes("\n".join(lines))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.txt"))), st.data())
def test_real_reports_cut_and_damaged(name: str, data: st.DataObject) -> None:
    """Blocks cut short, lines lost or garbled: a (possibly smaller) decode, never a traceback."""
    lines = (FIXTURES / name).read_text().splitlines()
    start = data.draw(st.integers(0, len(lines)))
    end = data.draw(st.integers(start, len(lines)))
    kept = lines[start:end]
    if kept:
        i = data.draw(st.integers(0, len(kept) - 1))
        kept[i] = kept[i][: data.draw(st.integers(0, len(kept[i])))]
    _assert_decodes("\n".join(kept))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_arbitrary_kmsg_records(records: list[bytes]) -> None:
    for r in decode_records(records, local=False):
        render_text(r)


def test_not_a_kernel_report() -> None:
    assert decode_text("hello\nworld\n") == []
    assert decode_text("") == []
