"""The decoder against real reports (tests/fixtures/kmsg/*.txt, each naming its source) and their
expected decodes (expected.json), plus the same reports disturbed the ways real logs are."""

from __future__ import annotations

import json
import re

import pytest

from tests.kmsg_support import FIXTURES, summarise
from unitrace.kmsg import decode_text

EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
CASES = sorted(k for k in EXPECTED if not k.startswith("_"))


def _check(name: str, text: str) -> None:
    reports = decode_text(text, local=False)
    want = EXPECTED[name]
    assert len(reports) == len(want), [r.title for r in reports]
    for got_report, expect in zip(reports, want, strict=True):
        got = summarise(got_report)
        for key, value in expect.items():
            if key == "causes_include":
                assert set(value) <= set(got[key]), (name, key, got[key])
            else:
                assert got[key] == value, (name, key, got[key], value)


def test_every_fixture_has_expectations_and_a_source() -> None:
    files = sorted(p.name for p in FIXTURES.glob("*.txt"))
    assert files == CASES
    for name in files:
        head = (FIXTURES / name).read_text().splitlines()[0]
        assert "source:" in head, name


@pytest.mark.parametrize("name", CASES)
def test_real_report(name: str) -> None:
    _check(name, (FIXTURES / name).read_text())


@pytest.mark.parametrize("name", CASES)
def test_quoted_in_a_reply(name: str) -> None:
    """A mail reply quotes the whole log again with `> `; the decode must not change."""
    text = (FIXTURES / name).read_text()
    _check(name, "\n".join("> " + line for line in text.splitlines()))


@pytest.mark.parametrize("name", CASES)
def test_through_syslog(name: str) -> None:
    """The same lines as journalctl -k / syslog print them."""
    text = (FIXTURES / name).read_text()
    lines = [f"Mar  7 17:26:50 buildhost kernel: {line.lstrip('> ')}" if line.strip() else line
             for line in text.splitlines()]
    _check(name, "\n".join(lines))


def test_lines_printed_twice_are_read_once() -> None:
    name = "riscv64_5.18_kprobe_ebreak.txt"
    lines = (FIXTURES / name).read_text().splitlines()
    doubled = []
    for line in lines:
        doubled.append(line)
        if re.search(r"\[\s*\d+\.\d+\]", line):
            doubled.append(line)  # console and syslog both captured it
    _check(name, "\n".join(doubled))


def test_interleaved_unrelated_lines_do_not_break_a_report() -> None:
    name = "arm64_5.17_ltp_wrapped.txt"
    out = []
    for i, line in enumerate((FIXTURES / name).read_text().splitlines()):
        out.append(line)
        if i % 7 == 3 and line.startswith("[    6.80"):
            out.append("[    6.805000] usb 1-1: new high-speed USB device number 3 using xhci_hcd")
    _check(name, "\n".join(out))


def test_caller_ids_separate_two_reports_printed_at_once() -> None:
    a = ["[  T650] WARNING: CPU: 0 PID: 650 at fs/a.c:1 a_func+0x1/0x10",
         "[  T650] Call Trace:", "[  T650]  <TASK>", "[  T650]  a_caller+0x10/0x20", "[  T650]  </TASK>",
         "[  T650] ---[ end trace 0000000000000000 ]---"]
    b = ["[  T651] WARNING: CPU: 1 PID: 651 at fs/b.c:2 b_func+0x2/0x10",
         "[  T651] Call Trace:", "[  T651]  <TASK>", "[  T651]  b_caller+0x20/0x40", "[  T651]  </TASK>",
         "[  T651] ---[ end trace 0000000000000000 ]---"]
    mixed = [x for pair in zip(a, b, strict=True) for x in pair]
    reports = decode_text("\n".join(mixed))
    assert [r.location for r in reports] == ["fs/a.c:1", "fs/b.c:2"]
    assert [[f.symbol for f in r.traces[0].frames] for r in reports] == [["a_caller"], ["b_caller"]]
