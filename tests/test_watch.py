"""Hardware watchpoints (`watch:` probes) on the ptrace backend, on real multi-threaded programs.

Each program is built here (-g -O0 -pthread); the lines a hit must name are found in the source text by
a marker comment, never written as numbers. The CLI runs as a user runs it: a started command, `-p PID`,
a probe file; text and JSON lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from unitrace.backends.ptrace import sys as px

pytestmark = pytest.mark.requires("ptrace", "perf_breakpoints")

UNITRACE = [sys.executable, "-m", "unitrace"]
FLAGS = ("-g", "-O0", "-pthread")

COUNTER_C = r"""
#include <pthread.h>
#include <stdio.h>
long counter;
static void *bump(void *arg) {
    (void)arg;
    counter += 1; /* BUMP */
    return NULL;
}
int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, bump, NULL);
    pthread_join(a, NULL);
    pthread_create(&b, NULL, bump, NULL);
    pthread_join(b, NULL);
    printf("counter=%ld\n", counter);
    return 0;
}
"""

# Thread A owns `victim`; thread B's fixed-size memset of its own buffer runs over into it. Both buffers are
# malloc'd one after the other (same size class), so they are neighbours on the heap.
OVERRUN_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define NEIGHBOUR_SIZE 24
#define OVERRUN 40
static char *neighbour;
static long *victim;
static void *owner(void *arg) {
    (void)arg;
    victim[0] = 7; /* OWNER */
    return NULL;
}
static void *scribble(void *arg) {
    (void)arg;
    memset(neighbour, 'B', OVERRUN); /* SCRIBBLE */
    return NULL;
}
int main(void) {
    char go[8];
    pthread_t a, b;
    neighbour = malloc(NEIGHBOUR_SIZE);
    victim = malloc(3 * sizeof(long));
    printf("%p %p\n", (void *)victim, (void *)neighbour);
    fflush(stdout);
    if (!fgets(go, sizeof go, stdin))
        return 1;
    pthread_create(&a, NULL, owner, NULL);
    pthread_join(a, NULL);
    pthread_create(&b, NULL, scribble, NULL);
    pthread_join(b, NULL);
    printf("victim[0]=%lx\n", victim[0]);
    return 0;
}
"""

READER_C = r"""
#include <pthread.h>
#include <stdio.h>
long shared = 5;
static long seen;
static void *reader(void *arg) {
    (void)arg;
    long v = shared; /* READ */
    seen = v;
    return NULL;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    pthread_join(t, NULL);
    printf("seen=%ld\n", seen);
    return 0;
}
"""

TICKER_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
long ticks;
static void *ticker(void *arg) {
    (void)arg;
    for (;;) {
        ticks++;
        usleep(20000);
    }
    return NULL;
}
int main(void) {
    pthread_t t;
    printf("%d\n", getpid());
    fflush(stdout);
    pthread_create(&t, NULL, ticker, NULL);
    pthread_join(t, NULL);
    return 0;
}
"""

FORKER_C = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
long counter;
int main(void) {
    pid_t pid = fork();
    if (pid == 0) {
        counter = 42; /* CHILD */
        execl("/bin/true", "true", (char *)NULL);
        _exit(1);
    }
    waitpid(pid, NULL, 0);
    counter = 1; /* PARENT */
    return 0;
}
"""

SELFTRAP_C = r"""
#include <signal.h>
#include <stdio.h>
long counter;
static volatile int traps;
static void on_trap(int sig) { (void)sig; traps++; }
int main(void) {
    signal(SIGTRAP, on_trap);
    raise(SIGTRAP);
    counter = 3; /* STORE */
    __asm__ volatile("int3");
    printf("traps=%d counter=%ld\n", traps, counter);
    return 0;
}
"""

MANY_C = r"""
#include <stdio.h>
long a, b, c, d, e;
int main(void) {
    FILE *f = fopen(MARKER, "w");
    if (f)
        fclose(f);
    a = b = c = d = e = 1;
    return 0;
}
"""


def line_of(source: str, marker: str) -> int:
    """The 1-based line of `source` that holds the comment /* marker */."""
    hits = [i for i, text in enumerate(source.splitlines(), 1) if f"/* {marker} */" in text]
    assert len(hits) == 1, marker
    return hits[0]


def unitrace(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UNITRACE, *args], capture_output=True, text=True, timeout=timeout, check=False)


def watch_events(stdout: str) -> list[dict]:
    """The watch events of JSON lines (the traced program's own output, on the same stdout, skipped)."""
    evs = (json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{"))
    return [ev for ev in evs if ev.get("kind") == "watch"]


def frames_at(ev: dict, function: str) -> list[dict]:
    return [f for f in ev.get("stack", ()) if f.get("sym") == function]


def test_global_written_by_threads_created_after_arming(build_c: Callable[..., Path]) -> None:
    exe = build_c(COUNTER_C, "counter", FLAGS)
    bump_line = line_of(COUNTER_C, "BUMP")
    jsonl = exe.parent / "counter-watch.jsonl"
    r = unitrace("trace", "--json", "-o", str(jsonl), "watch:&counter:8:w { print; stack }", "--", str(exe))
    assert r.returncode == 0, r.stderr
    evs = watch_events(jsonl.read_text())
    assert len(evs) == 2, r.stdout
    pid = evs[0]["pid"]
    tids = [ev["tid"] for ev in evs]
    assert len(set(tids)) == 2 and pid not in tids  # each hit in the thread that wrote
    assert [(ev["fields"]["old"], ev["fields"]["new"]) for ev in evs] == [(0, 1), (1, 2)]
    for ev in evs:
        f = ev["fields"]
        assert ev["name"] == "&counter" and f["function"] == "bump" and f["line"] == bump_line, f
        assert f["ip_exact"] and f["file"].endswith(".c")
        assert ev["stack"][0]["sym"] == "bump" and ev["stack"][0]["line"] == bump_line
    # the same through the text sink, and through a probe file
    text = unitrace("trace", "watch:&counter:8:w { print; stack }", "--", str(exe))
    assert text.returncode == 0, text.stderr
    hits = [ln for ln in text.stdout.splitlines() if "watch &counter:" in ln]
    assert len(hits) == 2 and "0 -> 1" in hits[0] and "1 -> 2" in hits[1]
    assert all("by bump+0x" in h and f".c:{bump_line}" in h for h in hits), text.stdout
    assert "    bump+0x" in text.stdout  # the stack under each line
    ut = exe.parent / "watch-counter.ut"
    ut.write_text("# who writes counter\nwatch:&counter:8:w { print }\n")
    run = unitrace("run", str(ut), "--", str(exe))
    assert run.returncode == 0, run.stderr
    assert sum("watch &counter: " in ln and f":{bump_line}" in ln for ln in run.stdout.splitlines()) == 2


def test_heap_overrun_by_memset_in_another_thread(build_c: Callable[..., Path]) -> None:
    """The case watchpoints exist for: who scribbled over my buffer? memset itself is libc's; the stack
    names the thread's function and the line of the call."""
    exe = build_c(OVERRUN_C, "overrun", FLAGS)
    owner_line, scribble_line = line_of(OVERRUN_C, "OWNER"), line_of(OVERRUN_C, "SCRIBBLE")
    prog = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout is not None and prog.stdin is not None
        victim, neighbour = (int(x, 16) for x in prog.stdout.readline().split())
        assert 0 < victim - neighbour <= 40 - 8  # the overrun reaches victim[0]
        tracer = subprocess.Popen([*UNITRACE, "trace", "--json", f"watch:{victim:#x}:8:w {{ print; stack }}",
                                   "-p", str(prog.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_traced(prog.pid, tracer)
        prog.stdin.write("go\n")
        prog.stdin.flush()
        assert prog.wait(timeout=30) == 0
        out, err = tracer.communicate(timeout=30)
    finally:
        prog.kill()
    assert tracer.returncode == 0, err
    assert prog.stdout.read().strip() == "victim[0]=4242424242424242"
    evs = watch_events(out)
    assert evs, out + err
    first = evs[0]["fields"]
    assert first["function"] == "owner" and first["line"] == owner_line and first["new"] == 7
    overruns = [ev for ev in evs[1:] if ev["fields"]["new"] == 0x4242424242424242]
    assert overruns, out
    ev = overruns[0]
    assert ev["fields"]["address"] == f"{victim:#x}" and ev["name"] == f"{victim:#x}"
    assert ev["tid"] != evs[0]["tid"] != ev["pid"]  # thread B, not the owner
    # the writer is memset (libc) or, were it inlined, scribble itself; either way the stack shows the call
    callers = frames_at(ev, "scribble")
    assert callers and callers[0]["line"] == scribble_line, ev["stack"]
    assert "memset" in ev["fields"]["function"] or ev["fields"]["function"] == "scribble", ev["fields"]
    assert ev["fields"]["old"] == 7


def test_rw_watch_sees_a_read(build_c: Callable[..., Path]) -> None:
    exe = build_c(READER_C, "reader", FLAGS)
    r = unitrace("trace", "--json", "watch:&shared:8:rw", "--", str(exe))
    assert r.returncode == 0, r.stderr
    evs = watch_events(r.stdout)
    assert len(evs) == 1, r.stdout
    f = evs[0]["fields"]
    assert f["old"] == f["new"] == 5 and f["access"] == "rw"
    assert f["function"] == "reader" and f["line"] == line_of(READER_C, "READ")
    assert evs[0]["text"].startswith("read 5 ")
    # a write-only watch on the same program sees nothing
    quiet = unitrace("trace", "--json", "watch:&shared:8:w", "--", str(exe))
    assert quiet.returncode == 0 and watch_events(quiet.stdout) == []


def test_forked_child_is_watched_with_follow_only(build_c: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_c(FORKER_C, "forker", FLAGS)
    out = tmp_path / "fork.jsonl"
    r = unitrace("trace", "--json", "-o", str(out), "watch:&counter:8:w", "--", str(exe))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    evs = [ev for ev in lines if ev["kind"] == "watch"]
    assert [(ev["fields"]["new"], ev["fields"]["line"]) for ev in evs] == [
        (42, line_of(FORKER_C, "CHILD")), (1, line_of(FORKER_C, "PARENT"))]
    assert evs[0]["pid"] != evs[1]["pid"]  # the child, then the parent (whose copy still held 0)
    assert evs[1]["fields"]["old"] == 0
    assert not [ev for ev in lines if ev["kind"] == "notice" and "not watching" in ev.get("text", "")]
    quiet = unitrace("trace", "--json", "-o", str(out), "--no-follow", "watch:&counter:8:w", "--", str(exe))
    assert quiet.returncode == 0, quiet.stderr
    assert [ev["fields"]["new"] for ev in map(json.loads, out.read_text().splitlines()) if ev["kind"] == "watch"] == [1]


def test_only_our_sigtraps_are_swallowed(build_c: Callable[..., Path]) -> None:
    """The program's own SIGTRAPs (raise, int3) reach its handler; the watchpoint's never does."""
    exe = build_c(SELFTRAP_C, "selftrap", FLAGS)
    r = unitrace("trace", "watch:&counter:8:w", "--", str(exe))
    assert r.returncode == 0, r.stderr
    assert "traps=2 counter=3" in r.stdout
    hits = [ln for ln in r.stdout.splitlines() if "watch &counter:" in ln]
    assert len(hits) == 1 and hits[0].endswith(f".c:{line_of(SELFTRAP_C, 'STORE')}"), r.stdout


def test_five_watchpoints_are_refused_before_anything_runs(build_c: Callable[..., Path], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    exe = build_c(MANY_C.replace("MARKER", json.dumps(str(marker))), "many", FLAGS)
    probes = [f"watch:&{v}:8:w" for v in "abcde"]
    r = unitrace("trace", *probes, "--", str(exe))
    assert r.returncode == 2
    assert r.stderr.startswith("unitrace: error: too many watchpoints: watch:&e:8:w would be number 5"), r.stderr
    assert "DR0-DR3" in r.stderr and r.stdout == ""
    assert not marker.exists()
    four = unitrace("trace", "--json", *probes[:4], "--", str(exe))
    assert four.returncode == 0 and {e["name"] for e in watch_events(four.stdout)} == {"&a", "&b", "&c", "&d"}
    assert marker.exists()


def test_unknown_or_misaligned_symbol_is_a_clear_error(build_c: Callable[..., Path]) -> None:
    exe = build_c(COUNTER_C, "counter", FLAGS)
    r = unitrace("trace", "watch:&nosuch:8:w", "--", str(exe))
    assert r.returncode == 2 and "no symbol 'nosuch' in" in r.stderr, r.stderr
    compiled = unitrace("compile", "watch:&counter:8:w", "watch:0x7ffd1230:4:rw")
    assert compiled.returncode == 0, compiled.stderr
    assert "DR0 = &counter" in compiled.stdout and "DR1 = 0x7ffd1230, 4 bytes, R/W=11" in compiled.stdout
    assert "DR7 = 0xf90005" in compiled.stdout


def test_attach_then_detach_leaves_the_process_running_without_watchpoints(build_c: Callable[..., Path]) -> None:
    exe = build_c(TICKER_C, "ticker", FLAGS)
    prog = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        assert prog.stdout is not None
        pid = int(prog.stdout.readline())
        tracer = subprocess.Popen([*UNITRACE, "trace", "watch:&ticks:8:w", "-p", str(pid)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(tracer.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        deadline = time.monotonic() + 30
        while sum("watch &ticks:" in ln for ln in lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        reader.join(timeout=10)
        hits = [ln for ln in lines if "watch &ticks:" in ln]
        assert len(hits) >= 3, "".join(lines) + tracer.stderr.read()  # type: ignore[union-attr]
        assert all("by ticker+0x" in h for h in hits)
        assert any(f"Process {pid} detached" in ln for ln in lines)
        time.sleep(0.3)  # it keeps writing ticks: a debug register left set would kill it with SIGTRAP
        assert prog.poll() is None
        regs = _debug_registers(pid)
        assert len(regs) == 2  # the main thread and the ticker
        assert all(dr == [0, 0, 0, 0, 0] for dr in regs.values()), regs
        assert prog.poll() is None
    finally:
        prog.kill()
        prog.wait()


def _wait_traced(pid: int, tracer: subprocess.Popen[str]) -> None:
    """Until `tracer` has attached to `pid` and armed its thread (the attach stop is behind it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert tracer.poll() is None, tracer.communicate()
        status = Path(f"/proc/{pid}/status").read_text()
        traced = any(ln.startswith("TracerPid:") and ln.split()[1] != "0" for ln in status.splitlines())
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        if traced and state != "t":
            return
        time.sleep(0.02)
    raise AssertionError("unitrace did not attach")


def _debug_registers(pid: int) -> dict[int, list[int]]:
    """DR0-DR3 and DR7 of every thread of `pid`, read through a fresh ptrace attach of our own."""
    out: dict[int, list[int]] = {}
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        px.ptrace(px.PTRACE_SEIZE, tid, None, 0)
        try:
            px.ptrace(px.PTRACE_INTERRUPT, tid)
            os.waitpid(tid, px.WALL)
            out[tid] = [px.peek_debugreg(tid, i) for i in (0, 1, 2, 3, px.DR_CONTROL)]  # type: ignore[misc]
        finally:
            px.ptrace_quiet(px.PTRACE_DETACH, tid, None, 0)
    return out


def test_debug_register_encoding() -> None:
    from unitrace.backends.ptrace.watchpoints import WatchSpec, dr7_value

    def spec(length: int, access: str) -> WatchSpec:
        return WatchSpec(0, "&x", "x", None, length, access)

    # L0 + R/W0=01 LEN0=10 (8 bytes); L1 + R/W1=11 LEN1=11 (4 bytes); L2 + 01/00; L3 + 11/01
    assert dr7_value(1, [spec(8, "w")]) == 0x1 | (0b1001 << 16)
    assert dr7_value(4, [spec(8, "w"), spec(4, "rw"), spec(1, "w"), spec(2, "rw")]) == (
        0x55 | 0b1001 << 16 | 0b1111 << 20 | 0b0001 << 24 | 0b0111 << 28)


def test_accessing_instruction_without_a_symbol_is_found_by_voting() -> None:
    """No symbol gives the function's start (stripped code, JIT): the decodings from each byte before rip
    agree on the instruction that ends there."""
    from unitrace.backends.ptrace.watchpoints import Watchpoints

    # push %rbp; mov %rsp,%rbp; mov 0x2ec8(%rip),%rax; add $1,%rax; mov %rax,0x2ebd(%rip)  <- the store
    code = bytes.fromhex("55 4889e5 488b05c82e0000 4883c001 488905bd2e0000".replace(" ", ""))
    base = 0x401000
    store = base + len(code) - 7
    padded = bytes(64) + code

    class Mem:
        def read(self, addr: int, size: int) -> bytes | None:
            off = addr - (base - 64)
            return padded[off:off + size] if off >= 0 and off + size <= len(padded) else None

    class NoMaps:
        def link_address(self, addr: int) -> None:
            return None

    w = Watchpoints((), notice=lambda pid, text: None)
    assert w._writer(base + len(code), NoMaps(), Mem()) == (store, False)


def test_predicates_on_the_watched_values(build_c: Callable[..., Path], tmp_path: Path) -> None:
    exe = build_c(COUNTER_C, "counter", FLAGS)
    out = tmp_path / "pred.jsonl"
    r = unitrace("trace", "--json", "-o", str(out), 'watch:&counter:8:w /new == 2 && function == "bump"/',
                 "--", str(exe))
    assert r.returncode == 0, r.stderr
    assert [(ev["fields"]["old"], ev["fields"]["new"]) for ev in watch_events(out.read_text())] == [(1, 2)]
    typo = unitrace("trace", "watch:&counter:8:w /nwe == 2/", "--", str(exe))
    assert typo.returncode == 2 and "unknown name 'nwe'" in typo.stderr and "did you mean new?" in typo.stderr
