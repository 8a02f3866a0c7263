"""The ftrace backend against this machine's kernel: tracepoints, uprobes, refusals, leftovers.

tracefs, tracepoints and uprobes exist here, so none of these may skip on this machine (CI runs as root).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unitrace.backends.base import CompiledProgram, TraceTarget
from unitrace.backends.ftrace.backend import FtraceBackend
from unitrace.backends.ftrace.compile import DynamicEvent, EventPlan, FtracePlan
from unitrace.backends.ftrace.session import FtraceSession, reap_stale
from unitrace.backends.ftrace.tracefs import Tracefs, find_tracefs
from unitrace.errors import Span, UnitraceError
from unitrace.events import EventKind
from unitrace.model.expr import Binary, Int, Name
from unitrace.model.probe import Probe, ProbePoint, Site, TracepointTarget, UserTarget

S = Span(1, 1)

MALLOC_C = textwrap.dedent("""
    #include <stdlib.h>
    #include <stdio.h>
    #include <unistd.h>
    int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 7;
        if (argc > 2) usleep(atoi(argv[2]) * 1000);
        for (int i = 0; i < n; i++) { void *volatile p = malloc(12345); free(p); }
        for (int i = 0; i < 3; i++) { void *volatile p = malloc(777); free(p); }
        return 3;
    }
""")


def _root() -> Path:
    root = find_tracefs()
    if root is None and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)
        root = find_tracefs()
    if root is None:
        pytest.skip("tracefs is not available on this machine")
    if os.geteuid() != 0:
        pytest.skip("tracefs needs root")
    return root


@pytest.fixture(scope="module")
def tracefs_root() -> Path:
    return _root()


@pytest.fixture(scope="module")
def malloc_prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("ftrace")
    (d / "m.c").write_text(MALLOC_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "m"), str(d / "m.c")], check=True)
    return str(d / "m")


def _leftovers(root: Path) -> list[str]:
    inst = [p.name for p in (root / "instances").iterdir() if p.name.startswith("unitrace-")]
    dyn = [line for line in (root / "dynamic_events").read_text().splitlines() if "unitrace_" in line]
    return inst + dyn


def _trace(probes: list[Probe], target: TraceTarget) -> tuple[int, list, FtraceSession]:
    backend = FtraceBackend()
    prog = backend.compile(probes, {})
    got: list = []
    with backend.start(prog, target, got.extend, {}) as session:
        rc = session.run()
    return rc, got, session


def test_tracepoint_exec_of_started_command(tracefs_root: Path) -> None:
    probe = Probe((ProbePoint("tracepoint", TracepointTarget("sched", "sched_process_exec")),))
    rc, events, session = _trace([probe], TraceTarget(command=("sh", "-c", "exec /bin/true; exit 9"),
                                                      follow_forks=True))
    assert rc == 0
    execs = [e for e in events if e.kind is EventKind.TRACEPOINT]
    files = [e.fields["filename"] for e in execs]
    assert files[0].endswith("/sh") or files[0].endswith("/dash")
    assert files[-1] == "/bin/true"
    assert all(e.pid == execs[0].pid for e in execs)  # sh exec'd true in place
    assert session.stats.lost == 0
    assert _leftovers(tracefs_root) == []


def test_uprobe_kernel_filter_and_return(tracefs_root: Path, malloc_prog: str) -> None:
    call = Probe((ProbePoint("user", UserTarget("libc", "malloc")),),
                 predicate=Binary(S, "==", Name(S, "arg0"), Int(S, 12345)))
    ret = Probe((ProbePoint("user", UserTarget("libc", "malloc"), Site.RETURN),))
    rc, events, _ = _trace([call, ret], TraceTarget(command=(malloc_prog, "5")))
    assert rc == 3  # the command's exit status is mirrored
    calls = [e for e in events if e.kind is EventKind.CALL]
    assert len(calls) == 5 and all(e.raw_args[0] == 12345 for e in calls)
    returns = [e for e in events if e.kind is EventKind.RETURN]
    assert len(returns) >= 5 + 3  # the program's mallocs, plus libc's own
    assert all(e.ret and e.ret > 0 for e in returns)
    assert _leftovers(tracefs_root) == []


def test_missing_symbol_is_a_clear_error(tracefs_root: Path) -> None:
    probe = Probe((ProbePoint("user", UserTarget("libc", "mallok")),))
    with pytest.raises(UnitraceError) as info:
        FtraceBackend().compile([probe], {})
    assert "no function 'mallok'" in info.value.message
    assert "malloc" in (info.value.hint or "")


def test_kernel_refusal_is_explained_and_nothing_is_left(tracefs_root: Path) -> None:
    plan = FtracePlan(
        (EventPlan("unitrace_<PID>", "bad", "call", 0),),
        (DynamicEvent("uprobe", False, "bad", "/bin/true:0x10", ("arg0=%zz",)),))
    prog = CompiledProgram("ftrace", (), (), {"plan": plan})
    session = FtraceSession(prog, TraceTarget(pids=(os.getpid(),)), lambda b: None, {})
    with pytest.raises(UnitraceError) as info, session:
        pass
    text = info.value.message
    assert "Invalid register name" in text
    caret_line = text.splitlines()[-1]
    cmd_line = text.splitlines()[-2]
    assert cmd_line[caret_line.index("^"):].startswith("%zz")
    assert _leftovers(tracefs_root) == []


HOLDER = textwrap.dedent("""
    import sys, time
    from unitrace.backends.base import TraceTarget
    from unitrace.backends.ftrace.backend import FtraceBackend
    from unitrace.model.probe import Probe, ProbePoint, UserTarget
    b = FtraceBackend()
    prog = b.compile([Probe((ProbePoint("user", UserTarget("libc", "malloc")),))], {})
    s = b.start(prog, TraceTarget(system_wide=True), lambda batch: None, {})
    s.__enter__()
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sigkilled_session_is_reaped_by_the_next(tracefs_root: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "#unitrace holder\n" + HOLDER],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        left = _leftovers(tracefs_root)
        assert f"unitrace-{holder.pid}" in left
        # A live session's objects are not touched by another session's reaping.
        assert reap_stale(Tracefs(tracefs_root)) == []
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        said: list[str] = []
        reaped = reap_stale(Tracefs(tracefs_root), say=said.append)
        assert f"instance unitrace-{holder.pid}" in reaped
        assert any(r.startswith(f"event unitrace_{holder.pid}/") for r in reaped)
        assert said and "reaped leftovers" in said[0]
        assert _leftovers(tracefs_root) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        reap_stale(Tracefs(tracefs_root))


def test_two_sessions_on_the_same_uprobe(tracefs_root: Path, malloc_prog: str) -> None:
    """Both get events; ending one leaves the other working (RELIABILITY #17)."""
    probe = Probe((ProbePoint("user", UserTarget("libc", "malloc")),),
                  predicate=Binary(S, "==", Name(S, "arg0"), Int(S, 12345)))
    backend = FtraceBackend()
    prog = backend.compile([probe], {})
    first: list = []
    with backend.start(prog, TraceTarget(system_wide=True), first.extend, {}) as s1:
        # the second session lives in another process, as a second user's unitrace would
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            #unitrace second session
            from unitrace.backends.base import TraceTarget
            from unitrace.backends.ftrace.backend import FtraceBackend
            from unitrace.model.probe import Probe, ProbePoint, UserTarget
            from unitrace.model.expr import Binary, Int, Name
            from unitrace.errors import Span
            S = Span(1, 1)
            p = Probe((ProbePoint("user", UserTarget("libc", "malloc")),),
                      predicate=Binary(S, "==", Name(S, "arg0"), Int(S, 12345)))
            b = FtraceBackend(); got = []
            with b.start(b.compile([p], {{}}), TraceTarget(command=({malloc_prog!r}, "4", "300")),
                         got.extend, {{}}) as s:
                s.run()
            print(sum(1 for e in got if e.raw_args and e.raw_args[0] == 12345))
        """)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
        out, _ = child.communicate(timeout=60)
        assert int(out.strip()) == 4
        # after the other session ended, ours still sees new calls
        subprocess.run([malloc_prog, "2"], check=False)
        s1.stop()
        s1.run()
    hits = [e for e in first if e.kind is EventKind.CALL and e.raw_args[0] == 12345]
    assert len(hits) >= 4 + 2
    assert _leftovers(tracefs_root) == []


def test_eintr_in_poll_is_not_a_stop(tracefs_root: Path, malloc_prog: str) -> None:
    """A signal whose handler does not ask for a stop must not end the session (RELIABILITY #24)."""
    probe = Probe((ProbePoint("user", UserTarget("libc", "malloc")),),
                  predicate=Binary(S, "==", Name(S, "arg0"), Int(S, 12345)))
    old = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        backend = FtraceBackend()
        prog = backend.compile([probe], {})
        got: list = []
        with backend.start(prog, TraceTarget(command=(malloc_prog, "3", "400")), got.extend, {}) as s:
            killer = subprocess.Popen(["sh", "-c", f"for i in 1 2 3 4 5; do sleep 0.05; kill -USR1 {os.getpid()}; done"])
            rc = s.run()
            killer.wait()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert rc == 3
    assert len([e for e in got if e.kind is EventKind.CALL]) == 3


def test_two_sessions_in_one_process(tracefs_root: Path, malloc_prog: str) -> None:
    probe = Probe((ProbePoint("user", UserTarget("libc", "malloc")),),
                  predicate=Binary(S, "==", Name(S, "arg0"), Int(S, 12345)))
    backend = FtraceBackend()
    prog = backend.compile([probe], {})
    a: list = []
    b: list = []
    with backend.start(prog, TraceTarget(system_wide=True), a.extend, {}) as s1:
        with backend.start(prog, TraceTarget(command=(malloc_prog, "2")), b.extend, {}) as s2:
            assert s1.instance != s2.instance and s1.group != s2.group
            s2.run()
        subprocess.run([malloc_prog, "1"], check=False)
        s1.stop()
        s1.run()
    assert len([e for e in b if e.kind is EventKind.CALL]) == 2
    assert len([e for e in a if e.kind is EventKind.CALL]) >= 3
    assert _leftovers(tracefs_root) == []


LOOP_C = textwrap.dedent("""
    #include <unistd.h>
    #include <stdlib.h>
    int main(int argc, char **argv) {
        long n = argc > 1 ? atol(argv[1]) : 100000;
        for (long i = 0; i < n; i++) getppid();
        return 0;
    }
""")


@pytest.fixture(scope="module")
def loop_prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("loop")
    (d / "l.c").write_text(LOOP_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "l"), str(d / "l.c")], check=True)
    return str(d / "l")


def test_overload_is_counted_per_cpu_never_silent(tracefs_root: Path, loop_prog: str) -> None:
    """A tiny buffer and a fast producer: the loss is reported per CPU (RELIABILITY #22)."""
    probe = Probe((ProbePoint("tracepoint", TracepointTarget("raw_syscalls", "sys_enter")),))
    backend = FtraceBackend()
    got: list = []
    with backend.start(backend.compile([probe], {}), TraceTarget(command=(loop_prog, "300000")), got.extend,
                       {"buffer_kb": 8}) as s:
        s.run()
    delivered = sum(1 for e in got if e.kind is EventKind.TRACEPOINT)
    lost_marks = sum(e.ret or 0 for e in got if e.kind is EventKind.LOST)
    assert s.stats.lost > 0 and sum(s.stats.lost_per_cpu.values()) == s.stats.lost
    assert delivered + s.stats.lost >= 300000  # every event is either delivered or counted as lost
    assert lost_marks > 0  # and the stream itself says where it lost them
    assert _leftovers(tracefs_root) == []


def test_other_processes_of_the_same_binary_are_not_traced(tracefs_root: Path, malloc_prog: str) -> None:
    """Uprobes are per file; the session's pid scope keeps other runs of the binary out (RELIABILITY #23)."""
    probe = Probe((ProbePoint("user", UserTarget(malloc_prog, "main")),))
    other = subprocess.Popen([malloc_prog, "1", "500"])
    try:
        rc, events, _ = _trace([probe], TraceTarget(command=(malloc_prog, "1")))
    finally:
        other.wait()
    assert rc == 3
    mains = [e for e in events if e.kind is EventKind.CALL]
    assert len(mains) == 1 and mains[0].pid != other.pid


def test_binary_deleted_while_attached(tracefs_root: Path, malloc_prog: str, tmp_path: Path) -> None:
    copy = tmp_path / "victim"
    copy.write_bytes(Path(malloc_prog).read_bytes())
    copy.chmod(0o755)
    probe = Probe((ProbePoint("user", UserTarget(str(copy), "main")),))
    backend = FtraceBackend()
    got: list = []
    with backend.start(backend.compile([probe], {}), TraceTarget(command=(str(copy), "1", "300")), got.extend,
                       {}) as s:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the held child has exec'd the copy
            try:
                if os.readlink(f"/proc/{s._held.pid}/exe") == str(copy):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        copy.unlink()  # the running program keeps its text; the session must still end cleanly
        rc = s.run()
    assert rc == 3
    assert [e.name for e in got if e.kind is EventKind.CALL] == ["main"]  # the symbol, not the event's name
    assert _leftovers(tracefs_root) == []


def test_events_carry_the_name_the_thread_had_at_the_time(tracefs_root: Path, tmp_path: Path) -> None:
    """Records are read after the fact: by then /proc (or saved_cmdlines) shows the thread's last name.
    A process that renames itself and execs twice must have each event under the name it had then."""
    from unitrace.lang import parse_program, resolve

    script = tmp_path / "first-name"
    script.write_text("#!/bin/sh\nexec 3</etc/hostname\nexec /bin/cat /etc/hostname\n")
    script.chmod(0o755)
    probes = resolve(parse_program("syscall:openat")).probes
    rc, got, _ = _trace(list(probes), TraceTarget(command=(str(script),)))
    assert rc == 0
    opens = sorted((e for e in got if e.kind is EventKind.SYSCALL and e.name == "openat"), key=lambda e: e.ts_ns)
    names = [e.comm for e in opens]
    # the shell runs under the script's name until it execs cat: no other name, and no interleaving
    assert set(names) == {"first-name", "cat"}, names
    first_cat = names.index("cat")
    assert "first-name" in names[:first_cat] and set(names[first_cat:]) == {"cat"}, names
    assert _leftovers(tracefs_root) == []


def test_syscall_texts_are_made_when_read_and_stacks_still_attach(tracefs_root: Path) -> None:
    """Syscall events leave the reader without their strace texts (LazySyscallEvent); reading them decodes
    once, the same as an eager decode. A kernel stack taken at the entry still reaches the joined event."""
    from unitrace.backends.ftrace.session import LazySyscallEvent
    from unitrace.lang import parse_probe_args
    from unitrace.runner import resolve_program

    program = resolve_program(parse_probe_args(['syscall:openat /ret >= 0/ { kstack }']))
    rc, events, session = _trace(list(program.probes), TraceTarget(command=("cat", "/etc/hostname")))
    assert rc == 0
    opens = [e for e in events if e.kind is EventKind.SYSCALL and e.name == "openat" and e.comm == "cat"]
    assert opens and all(isinstance(e, LazySyscallEvent) for e in opens)
    last = opens[-1]
    assert last.args[1].startswith("0x") and last.ret_text == str(last.ret) and last.errno == 0
    assert last.args == session._decode_syscall("openat", last.raw_args, last.ret)[0]
    assert any(e.kstack for e in opens), "the entry's stack record was not attached"
    assert _leftovers(tracefs_root) == []


def test_calls_that_never_return_are_reported_at_entry(tracefs_root: Path, build_c) -> None:
    """exit and exit_group have no exit record: each is an event made at its entry, `= ?` as strace
    prints it (a probe on them used to show nothing)."""
    from tests.run_support import build_demo
    from unitrace.lang import parse_program, resolve

    demo = build_demo(build_c)
    probes = resolve(parse_program("syscall:exit_group, syscall:exit")).probes
    rc, got, session = _trace(list(probes), TraceTarget(command=(str(demo),), follow_forks=True))
    assert rc == 0
    calls = [e for e in got if e.kind is EventKind.SYSCALL]
    groups = [e for e in calls if e.name == "exit_group"]
    # the demo and the /bin/true it runs in a child both end with exit_group(0); its two threads with exit(0)
    assert len(groups) == 2 and all(e.args == ("0",) and e.ret_text == "?" and e.ret is None for e in groups)
    assert len([e for e in calls if e.name == "exit" and e.args == ("0",)]) == 2
    assert len({e.pid for e in groups}) == 2
    assert session.stats.lost == 0
    assert _leftovers(tracefs_root) == []


def test_the_held_childs_own_wait_is_not_reported(tracefs_root: Path) -> None:
    """A started command waits for us in a read() before its exec; tracing sees that read end without its
    entry. It is ours, not the command's: no `<... read resumed>` from the command's pid."""
    from unitrace.lang import parse_program, resolve

    for text in ("syscall:read", "syscall:*"):
        probes = resolve(parse_program(text)).probes
        rc, got, _ = _trace(list(probes), TraceTarget(command=("sh", "-c", "cat /etc/hostname > /dev/null"),
                                                      follow_forks=True))
        assert rc == 0
        assert [e for e in got if e.kind is EventKind.SYSCALL_RESUMED] == [], text
        reads = [e for e in got if e.kind is EventKind.SYSCALL and e.name == "read"]
        assert reads and {e.comm for e in reads} <= {"sh", "cat"}, {e.comm for e in reads}
    assert _leftovers(tracefs_root) == []
