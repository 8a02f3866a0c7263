"""/dev/kmsg for real: inject kernel-log lines as root and check the follower decodes them; the
decode_records hook; the `unitrace decode` command line."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.kmsg_support import FIXTURES
from unitrace.kmsg import decode_records, decode_text, iter_follow, parse_record
from unitrace.kmsg.model import Report

CAN_WRITE_KMSG = os.geteuid() == 0 and os.access("/dev/kmsg", os.W_OK)
WAIT = 20.0  # an upper bound on waiting for the follower, not a measurement


def _inject(lines: list[str]) -> None:
    """One write, one record: the kernel rate-limits /dev/kmsg writers (printk_devkmsg=ratelimit allows
    a burst of 10 records per 5 s), so the whole report goes in one multi-line record."""
    fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_CLOEXEC)
    try:
        # the trailing newline finalises the record; without it printk keeps it open for a continuation
        # and readers see it only when the next message arrives
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)


def _readline(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, "no output from the follower"
    return proc.stdout.readline()


def _fake_warning(tag: str) -> list[str]:
    return ["<4>------------[ cut here ]------------",
            f"WARNING: CPU: 1 PID: 4242 at unitrace/{tag}.c:17 unitrace_live_test+0x1/0x10",
            "Modules linked in: unitrace_fake(O)",
            "CPU: 1 PID: 4242 Comm: unitrace-test Tainted: G           O      6.18.0 #1",
            "RIP: 0010:unitrace_live_test+0x1/0x10",
            "Call Trace:", " <TASK>", " ? unitrace_fake_caller+0x5/0x20",
            " unitrace_fake_entry+0x10/0x40", " </TASK>",
            "---[ end trace 0000000000000000 ]---"]


@pytest.mark.skipif(not CAN_WRITE_KMSG, reason="injecting kernel log lines needs root and a writable /dev/kmsg")
def test_follow_decodes_injected_warning() -> None:
    tag = f"kmsg_live_{uuid.uuid4().hex[:12]}"
    stop, ready = threading.Event(), threading.Event()
    found: list[Report] = []

    def run() -> None:
        for report in iter_follow(stop=stop, idle=0.2, ready=ready):
            if tag in report.location:
                found.append(report)
                stop.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(WAIT)
    _inject(_fake_warning(tag))
    t.join(WAIT)
    stop.set()
    assert found, "the follower did not report the injected WARNING"
    r = found[0]
    assert r.kind == "warning" and r.location == f"unitrace/{tag}.c:17"
    assert r.function == "unitrace_live_test+0x1/0x10" and r.pid == 4242 and r.comm == "unitrace-test"
    assert r.taint_letters == "G O" and r.modules == ["unitrace_fake(O)"]
    assert r.traces[0].entries[0] == "<TASK>" and r.traces[0].entries[-1] == "</TASK>"
    assert [(f.symbol, f.reliable) for f in r.traces[0].frames] == [
        ("unitrace_fake_caller", False), ("unitrace_fake_entry", True)]
    assert r.registers and r.registers[0].ip is not None and r.registers[0].ip.symbol == "unitrace_live_test"
    assert not r.truncated


@pytest.mark.skipif(not CAN_WRITE_KMSG, reason="injecting kernel log lines needs root and a writable /dev/kmsg")
def test_cli_follow_prints_json_for_injected_warning() -> None:
    tag = f"kmsg_cli_{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen([sys.executable, "-m", "unitrace", "decode", "--follow", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "following /dev/kmsg" in proc.stderr.readline()
        _inject(_fake_warning(tag))
        got = None
        deadline = time.monotonic() + WAIT
        while got is None:
            line = _readline(proc, deadline)
            assert line, "the follower exited"
            obj = json.loads(line)
            if tag in obj["location"]:
                got = obj
        assert got["kind"] == "warning" and got["pid"] == 4242
        assert got["traces"][0]["entries"][1]["symbol"] == "unitrace_fake_caller"
        assert got["traces"][0]["entries"][1]["reliable"] is False
    finally:
        proc.kill()
        proc.wait()


def test_parse_record() -> None:
    rec = parse_record(b"4,1234,5678901,-,caller=T650;WARNING: x\\x0ay\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n")
    assert rec is not None
    assert (rec.level, rec.facility, rec.seq, rec.ts_usec, rec.caller) == (4, 0, 1234, 5678901, "T650")
    assert rec.message == "WARNING: x\ny" and rec.fields == {"SUBSYSTEM": "pci", "DEVICE": "+pci:0000:00:01.0"}
    assert parse_record(b"garbage") is None


def test_decode_records_matches_decode_text() -> None:
    """The live hook, fed a report record by record, decodes what decode_text decodes from the file."""
    text = (FIXTURES / "riscv64_5.18_kprobe_ebreak.txt").read_text()
    from unitrace.kmsg.lines import normalise

    records = [f"4,{i},{int((ln.ts or 0) * 1e6)},-;{ln.text}".encode() for i, ln in enumerate(normalise(text))
               if ln.ts is not None]
    streamed = list(decode_records(records, local=False))
    whole = decode_text(text, local=False)
    assert [(r.kind, r.title, r.location) for r in streamed] == [(r.kind, r.title, r.location) for r in whole]
    assert streamed[0].ftrace is not None and streamed[0].causes[0].key == "breakpoint"


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", "decode", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_cli_file_text_and_json() -> None:
    path = str(FIXTURES / "x86_64_kprobe_livepatch_sys_dup.txt")
    out = _cli(path)
    assert out.returncode == 0, out.stderr
    assert "ftrace failed to modify SyS_dup" in out.stdout
    assert "0xffffffff8126fee0: jmp 0xffffffffc0554f30" in out.stdout
    assert "the site already holds a branch that ftrace did not put there" in out.stdout
    js = _cli("--json", path)
    doc = json.loads(js.stdout)
    assert doc["schema"] == "unitrace.kmsg/1"
    bug = doc["reports"][0]["ftrace"]
    assert bug["address"] == "0xffffffff8126fee0" and bug["actual"]["data"] == "e9:4b:50:2e:3f"
    assert bug["actual_insns"][0]["target"] == "0xffffffffc0554f30"


def test_cli_stdin_nothing_found_and_bad_file(tmp_path: Path) -> None:
    none = _cli("-", stdin="just some text\n")
    assert none.returncode == 1 and "not a kernel report" in none.stderr
    missing = _cli(str(tmp_path / "nope.log"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert _cli(str(tmp_path)).returncode == 2


def test_kallsyms_file_symbolises_the_branch_target(tmp_path: Path) -> None:
    ks = tmp_path / "kallsyms"
    ks.write_text("ffffffff8126fee0 T SyS_dup\nffffffff81270000 T SyS_dup2\n"
                  "ffffffffc0554f00 t kpatch_hook\t[kpatch_mod]\n")
    out = _cli("--kallsyms", str(ks), str(FIXTURES / "x86_64_kprobe_livepatch_sys_dup.txt"))
    assert out.returncode == 0
    assert "-> 0xffffffffc0554f30 kpatch_hook+0x30 [kpatch_mod]" in out.stdout
    assert "the target is kpatch_hook+0x30 [kpatch_mod] (from kallsyms)" in out.stdout


def test_log_from_this_machine_is_symbolised_with_proc_kallsyms() -> None:
    """A report naming this kernel's version is read against /proc/kallsyms: the branch target found in
    the bytes is named, and a call to ftrace's own trampoline reads as 'record out of sync'."""
    from unitrace.kmsg.kallsyms import load

    table = load("/proc/kallsyms")
    site, tramp = table.address_of("vfs_read"), table.address_of("ftrace_caller")
    if not table.usable or site is None or tramp is None:
        pytest.skip("/proc/kallsyms hides addresses or lacks vfs_read/ftrace_caller on this kernel")
    rel = (tramp - (site + 5)) & 0xFFFFFFFF
    actual = ":".join(f"{b:02x}" for b in bytes([0xE8]) + rel.to_bytes(4, "little"))
    text = "\n".join([
        "------------[ ftrace bug ]------------", "ftrace failed to modify", f"[<{site:016x}>] vfs_read+0x0/0x100",
        f" actual:   {actual}", "Setting ftrace call site to call ftrace function", "ftrace record flags: 0",
        " (0)", f" expected tramp: {tramp:x}", "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 1 at kernel/trace/ftrace.c:2180 ftrace_bug+0x1/0x2",
        f"CPU: 0 PID: 1 Comm: x Not tainted {os.uname().release} #1", "RIP: 0010:ftrace_bug+0x1/0x2",
        "---[ end trace 0000000000000000 ]---"])
    [r] = decode_text(text)
    assert r.ftrace is not None
    call = r.ftrace.actual_insns[0]
    assert call.mnemonic == "call" and call.target == tramp and call.target_symbol == "ftrace_caller+0x0"
    assert r.ftrace.expected_tramp_symbol == "ftrace_caller+0x0"
    assert r.causes[0].key == "out_of_sync"
