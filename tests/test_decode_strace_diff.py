"""Differential: our decoder's lines for real syscalls of tests/progs/decode/*.c against the installed
strace's lines for the same program (strace 6.1). Addresses and pids are normalised; both runs use
the same working directory. Known difference: none in these programs."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.decode_ptrace_support import trace_lines
from unitrace.decode.api import FormatOptions

PROGS = Path(__file__).parent / "progs" / "decode"
pytestmark = pytest.mark.skipif(shutil.which("strace") is None or shutil.which("gcc") is None,
                                reason="needs strace and gcc")


def _norm(line: str, pids: set[str]) -> str:
    line = re.sub(r"0x[0-9a-f]{6,}", "0xADDR", line.strip())
    line = re.sub(r"\s+= ", " = ", line)
    line = re.sub(r":\[\d+\]", ":[INODE]", line)
    for p in pids:
        line = re.sub(rf"\b{p}\b", "PID", line)
    return line


def _compare(tmp_path: Path, prog: str, strace_flags: list[str], options: FormatOptions) -> None:
    theirs, ours = _run_both(tmp_path, prog, strace_flags, options)
    diff = "\n".join(difflib.unified_diff(theirs, ours, "strace", "unitrace", lineterm="", n=1))
    assert theirs == ours, diff


def _run_both(tmp_path: Path, prog: str, strace_flags: list[str],
              options: FormatOptions) -> tuple[list[str], list[str]]:
    exe = tmp_path / prog
    subprocess.run(["gcc", "-O0", "-o", str(exe), str(PROGS / f"{prog}.c")], check=True)
    out = tmp_path / "strace.txt"
    subprocess.run(["strace", "-qq", *strace_flags, "-o", str(out), str(exe)], check=True, cwd=tmp_path)
    theirs_raw = [ln for ln in out.read_text().splitlines() if not ln.startswith(("+++", "---"))]
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        ours_raw = trace_lines([str(exe)], options)
    finally:
        os.chdir(old)
    pids = {m.group(1) for ln in theirs_raw + ours_raw for m in [re.match(r"(?:getpid|set_tid_address)\(.*= (\d+)$", ln)] if m}
    return [_norm(ln, pids) for ln in theirs_raw], [_norm(ln, pids) for ln in ours_raw]


def test_calls_default(tmp_path: Path) -> None:
    _compare(tmp_path, "calls", [], FormatOptions())


def test_calls_hex_and_short_strings(tmp_path: Path) -> None:
    _compare(tmp_path, "calls", ["-x", "-s", "8"], FormatOptions(string_limit=8, hex_strings=1))


def test_calls_all_hex(tmp_path: Path) -> None:
    _compare(tmp_path, "calls", ["-xx"], FormatOptions(hex_strings=2))


def test_calls_raw_xlat(tmp_path: Path) -> None:
    _compare(tmp_path, "calls", ["-X", "raw"], FormatOptions(xlat="raw"))


def test_calls_verbose(tmp_path: Path) -> None:
    _compare(tmp_path, "calls", ["-v"], FormatOptions(verbose=True))


def test_calls_fds(tmp_path: Path) -> None:
    _compare(tmp_path, "calls", ["-y"], FormatOptions(decode_fds=1))


# tests/progs/decode/io.c: msghdr with SCM_RIGHTS/SCM_CREDENTIALS, poll/ppoll, epoll, pselect6, statx,
# sendfile, prctl, futex, socketpair, setsockopt
@pytest.mark.parametrize(("flags", "options"), [
    ([], FormatOptions()),
    (["-v"], FormatOptions(verbose=True)),
    (["-y"], FormatOptions(decode_fds=1)),
    (["-X", "raw"], FormatOptions(xlat="raw")),
    (["-X", "verbose"], FormatOptions(xlat="verbose")),
    (["-xx", "-s", "4"], FormatOptions(hex_strings=2, string_limit=4)),
], ids=["default", "v", "y", "Xraw", "Xverbose", "xx-s4"])
def test_io(tmp_path: Path, flags: list[str], options: FormatOptions) -> None:
    _compare(tmp_path, "io", flags, options)


# Netlink: iproute2 under strace and under our decoder. Only socket calls are compared (the rest of ip's
# start-up is covered above); sequence numbers, port ids and traffic counters differ between two runs
# by nature and are normalised.
_SOCKET_CALLS = ("socket(", "bind(", "getsockname(", "setsockopt(", "sendto(", "recvfrom(", "sendmsg(",
                 "recvmsg(")
_IP = shutil.which("ip")


def _norm_netlink(line: str) -> str:
    line = re.sub(r"nlmsg_seq=\d+", "nlmsg_seq=SEQ", line)
    line = re.sub(r"nlmsg_pid=-?[1-9]\d*", "nlmsg_pid=PORT", line)
    line = re.sub(r"nl_pid=-?[1-9]\d*", "nl_pid=PORT", line)
    line = re.sub(r"(ROUTE:|NETLINK:\[)\d+", r"\1N", line)
    line = re.sub(r"\b(cstamp|tstamp|[rt]x_[a-z_]+|multicast|collisions)=\d+", r"\1=N", line)
    line = re.sub(r"IFLA_CARRIER_(CHANGES|UP_COUNT|DOWN_COUNT)\}, \d+", r"IFLA_CARRIER_\1}, N", line)
    return re.sub(r"\s+= ", " = ", line.strip())


@pytest.mark.skipif(_IP is None, reason="needs iproute2's ip")
@pytest.mark.parametrize(("args", "flags", "options"), [
    (["link"], [], FormatOptions()),
    (["addr"], [], FormatOptions()),
    (["route"], [], FormatOptions()),
    (["-6", "route"], [], FormatOptions()),
    (["addr"], ["-s", "8"], FormatOptions(string_limit=8)),
    (["link"], ["-yy"], FormatOptions(decode_fds=2)),
    (["addr"], ["-X", "verbose"], FormatOptions(xlat="verbose")),
    (["route"], ["-X", "raw"], FormatOptions(xlat="raw")),
    (["route"], ["-xx"], FormatOptions(hex_strings=2)),
], ids=["link", "addr", "route", "route6", "addr-s8", "link-yy", "addr-Xverbose", "route-Xraw", "route-xx"])
def test_netlink_iproute2(tmp_path: Path, args: list[str], flags: list[str], options: FormatOptions) -> None:
    out = tmp_path / "strace.txt"
    argv = [str(_IP), *args]
    subprocess.run(["strace", "-qq", *flags, "-o", str(out), *argv], check=True, stdout=subprocess.DEVNULL)
    theirs = [_norm_netlink(ln) for ln in out.read_text().splitlines() if ln.startswith(_SOCKET_CALLS)]
    ours = [_norm_netlink(ln) for ln in trace_lines(argv, options) if ln.startswith(_SOCKET_CALLS)]
    assert any("nlmsg_type=" in ln for ln in theirs), "strace decoded no netlink message"
    diff = "\n".join(difflib.unified_diff(theirs, ours, "strace", "unitrace", lineterm="", n=0))
    assert theirs == ours, diff
