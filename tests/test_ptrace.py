"""The ptrace engine on real processes: start, follow, decode, signals, exits, attach and detach.

Every test runs a C program from tests/progs/ptrace (built here with gcc) under a PtraceSession and checks
the events against what the program itself knows (its counts, its exit status, its pid) or against strace.
The RELIABILITY.md case each test covers is named in its docstring.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.ptrace_support import RUNNER, build, later, proc_state, trace
from unitrace.decode.api import FormatOptions
from unitrace.errors import TargetError
from unitrace.events import EventKind


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ptrace-progs")


def test_started_command_from_execve_to_exit(bins: Path) -> None:
    exe = build("getppid_loop", bins)
    r = trace([exe, "25"])
    calls = r.of(EventKind.SYSCALL)
    assert calls[0].name == "execve" and calls[0].args[0] == f'"{exe}"' and calls[0].ret == 0
    assert sum(1 for e in calls if e.name == "getppid") == 25
    last = calls[-1]
    assert last.name == "exit_group" and last.ret is None and last.ret_text == "?"
    exits = r.of(EventKind.EXIT)
    assert len(exits) == 1 and exits[0].ret == 0 and exits[0].pid == calls[0].pid
    assert r.status == 0
    assert all(e.duration_ns is not None and e.duration_ns >= 0 for e in calls[:-1])
    assert all(e.ts_ns > 1_600_000_000 * 10**9 for e in calls)  # CLOCK_REALTIME


def test_fallback_and_seccomp_give_the_same_lines(bins: Path) -> None:
    """RELIABILITY #15: PTRACE_GETREGS instead of PTRACE_GET_SYSCALL_INFO, and the seccomp prefilter on or
    off, print the same lines."""
    exe = build("hostile", bins)
    names = {"openat", "getppid", "munmap", "exit_group"}
    base = trace([exe], names=names, seccomp=False)
    regs = trace([exe], names=names, seccomp=False, get_syscall_info=False)
    filt = trace([exe], names=names, seccomp=True)
    filt_regs = trace([exe], names=names, seccomp=True, get_syscall_info=False)

    def wanted(lines: list[str]) -> list[str]:
        # mappings move between runs (ASLR): addresses are compared by shape only
        return [re.sub(r"0x[0-9a-f]{6,}", "0xADDR", ln) for ln in lines if ln.split("(")[0] in names]

    assert wanted(base.lines()) == wanted(regs.lines()) == wanted(filt.lines()) == wanted(filt_regs.lines())
    assert len(filt.lines()) >= 6
    assert {e.name for e in filt.of(EventKind.SYSCALL)} <= names  # the filter stopped only at these


def test_hostile_pointers_match_strace(bins: Path, tmp_path: Path) -> None:
    """RELIABILITY #13: unmapped pointers, a string running into an unmapped page, a 4096-byte path."""
    exe = build("hostile", bins)
    out = tmp_path / "strace.out"
    subprocess.run(["strace", "-qq", "-e", "trace=openat", "-o", str(out), exe], check=True)

    def hostile(lines: list[str]) -> list[str]:
        picked = [ln for ln in lines if ln.startswith("openat(") and not ln.startswith('openat(AT_FDCWD, "/')]
        return [re.sub(r"0x7[0-9a-f]{9,}", "0xADDR", re.sub(r"\)\s+= ", ") = ", ln)) for ln in picked]

    theirs = hostile(out.read_text().splitlines())
    ours = hostile(trace([exe], names={"openat"}).lines())
    assert len(theirs) == 4 and "0xADDR" in theirs[1]
    assert ours == theirs


@pytest.mark.parametrize("how,code,signame", [("exit", 3, None), ("abort", 128 + 6, "SIGABRT"),
                                              ("segv", 128 + 11, "SIGSEGV")])
def test_exit_status_and_signals(bins: Path, how: str, code: int, signame: str | None) -> None:
    """RELIABILITY #12: the status to mirror; handled signals shown and delivered; SIGPIPE not ignored and
    nothing blocked in the tracee though Python ignores SIGPIPE (the program exits 90/91 otherwise)."""
    exe = build("signals", bins)
    r = trace([exe, how, "3"])
    assert r.status == code
    sigs = r.of(EventKind.SIGNAL)
    assert sigs[0].name == "SIGUSR1" and sigs[0].fields["signo"] == signal.SIGUSR1
    assert str(sigs[0].fields["siginfo"]).startswith("{si_signo=SIGUSR1, si_code=SI_USER, si_pid=")
    (ex,) = r.of(EventKind.EXIT)
    if signame is None:
        assert ex.ret == 3 and "signal" not in ex.fields
    else:
        assert ex.fields["signal"] == signame and sigs[-1].name == signame


def test_64_threads_counts_per_tid(bins: Path) -> None:
    """RELIABILITY #9: no event lost or given to the wrong thread."""
    exe = build("threads", bins)
    r = trace([exe, "64", "50"], names={"getppid", "write", "exit", "exit_group"},
              format_options=FormatOptions(string_limit=1 << 16))
    own = {}
    text = "".join(e.args[1].strip('"').replace("\\n", "\n") for e in r.of(EventKind.SYSCALL, "write"))
    for line in text.splitlines():
        tid, count = line.split()
        own[int(tid)] = int(count)
    counted = Counter(e.tid for e in r.of(EventKind.SYSCALL, "getppid"))
    assert len(own) == 64
    assert dict(counted) == own
    assert r.status == 0


def test_fork_storm_thousand_children(bins: Path) -> None:
    """RELIABILITY #10 (the fork storm half): every child seen, every exit reported."""
    exe = build("forker", bins)
    r = trace([exe, "1000"], names={"exit_group"}, seccomp=True)
    assert r.status == 0
    children = {e.fields["child"] for e in r.of(EventKind.FORK)}
    assert len(children) == 1000
    exited = {e.tid: e.ret for e in r.of(EventKind.EXIT)}
    assert set(exited) == children | {r.of(EventKind.EXIT)[-1].pid}
    assert sorted(exited[c] for c in children) == sorted(i % 256 for i in range(1000))


def test_exec_from_a_non_leader_thread(bins: Path) -> None:
    """RELIABILITY #8: the exec is attributed to the leader, the former tid is named, nothing hangs."""
    exe = build("thread_exec", bins)
    r = trace([exe], names={"execve", "write", "exit_group"})
    assert r.status == 0
    (ev,) = r.of(EventKind.EXEC)[-1:]
    leader = r.of(EventKind.SYSCALL, "execve")[0].pid
    thread_tid = int(r.of(EventKind.SYSCALL, "write")[0].args[1].strip('"').split("\\n")[0])
    assert ev.pid == ev.tid == leader
    assert ev.fields["old_tid"] == thread_tid != leader
    second = r.of(EventKind.SYSCALL, "execve")[-1]
    assert second.tid == leader and second.ret == 0 and second.args[0] == '"/bin/true"'


def test_sigstop_sigcont_with_handlers(bins: Path) -> None:
    """RELIABILITY #6: the stop really stops, SIGCONT resumes it and its handler runs."""
    exe = build("stopcont", bins)
    seen: dict[str, int] = {}

    def on_batch(batch: list) -> None:
        for e in batch:
            if e.kind is EventKind.SIGNAL and e.name == "SIGSTOP":
                def cont(pid: int = e.pid) -> None:
                    while proc_state(pid)[0] != "t":  # group-stopped under ptrace
                        time.sleep(0.005)
                    seen["state"] = 1
                    os.kill(pid, signal.SIGCONT)
                later(cont)

    r = trace([exe], on_batch=on_batch)
    assert seen == {"state": 1}
    assert [e.name for e in r.of(EventKind.SIGNAL)] == ["SIGSTOP", "SIGCONT"]
    assert r.status == 0  # the SIGCONT handler ran


def test_tracee_killed_mid_syscall(bins: Path) -> None:
    """RELIABILITY #10: a tracee SIGKILLed while asleep in a syscall: `= ?` and killed by SIGKILL."""
    exe = build("waiter", bins)

    def on_batch(batch: list) -> None:
        for e in batch:
            if e.kind is EventKind.SYSCALL and e.name == "write":
                def kill(pid: int = e.pid) -> None:
                    while proc_state(pid)[0] != "S":  # asleep in pause()
                        time.sleep(0.005)
                    os.kill(pid, signal.SIGKILL)
                later(kill)

    r = trace([exe, "pause"], on_batch=on_batch)
    assert r.status == 128 + 9
    last = r.of(EventKind.SYSCALL)[-1]
    assert last.name == "pause" and last.ret is None and last.ret_text == "?"
    assert r.of(EventKind.EXIT)[0].fields["signal"] == "SIGKILL"


def test_tracee_killed_while_group_stopped(bins: Path) -> None:
    """RELIABILITY #10: SIGKILL reaches a tracee we hold in a group-stop (PTRACE_LISTEN)."""
    exe = build("waiter", bins)
    fired: list[int] = []

    def on_batch(batch: list) -> None:
        for e in batch:
            if e.kind is EventKind.SYSCALL and e.name == "getppid" and not fired:
                fired.append(e.pid)
                os.kill(e.pid, signal.SIGSTOP)
            elif e.kind is EventKind.SIGNAL and e.name == "SIGSTOP":
                # delivered: from here the tracee sits in its group-stop ('t', held with PTRACE_LISTEN)
                def kill(pid: int = e.pid) -> None:
                    while proc_state(pid)[0] != "t":
                        time.sleep(0.005)
                    os.kill(pid, signal.SIGKILL)
                later(kill)

    r = trace([exe, "loop"], on_batch=on_batch)
    assert r.status == 128 + 9
    assert r.of(EventKind.EXIT)[0].fields["signal"] == "SIGKILL"
    assert "SIGSTOP" in [e.name for e in r.of(EventKind.SIGNAL)]


def test_nonexistent_command() -> None:
    with pytest.raises(TargetError, match="command not found: no-such-command-unitrace"):
        trace(["no-such-command-unitrace"])


def test_nonexistent_pid() -> None:
    with pytest.raises(TargetError, match="no process with PID"):
        trace(pids=(2**22 + 12345,))


@pytest.fixture
def waiter(bins: Path):
    procs: list[subprocess.Popen] = []

    def start(mode: str) -> subprocess.Popen:
        p = subprocess.Popen([build("waiter", bins), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.stdout is not None
        assert int(p.stdout.readline()) == p.pid
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _stop_after(n_events: int):
    state = {"seen": 0}

    def ready(session) -> None:
        state["session"] = session

    def on_batch(batch: list) -> None:
        state["seen"] += len(batch)
        if state["seen"] >= n_events:
            state["session"].stop()  # from the tracer's own thread, like a signal handler

    return ready, on_batch


def test_attach_running_then_detach(waiter) -> None:
    """RELIABILITY #3: attached, stopped on request, detached: the tracee runs on, untraced."""
    p = waiter("loop")
    ready, on_batch = _stop_after(200)
    r = trace(pids=(p.pid,), ready=ready, on_batch=on_batch, follow_forks=False)
    assert any(e.kind is EventKind.NOTICE and e.text == f"Process {p.pid} attached" for e in r.events)
    assert any(e.kind is EventKind.NOTICE and e.text == f"Process {p.pid} detached" for e in r.events)
    assert len(r.of(EventKind.SYSCALL, "getppid")) >= 50
    state, tracer = proc_state(p.pid)
    assert tracer == 0 and state in ("R", "S")
    assert p.poll() is None


def test_attach_sleeping_then_detach_restarts_the_syscall(waiter) -> None:
    """RELIABILITY #4: detached while asleep in read(): the read restarts and gets its byte."""
    p = waiter("read")
    r = trace(pids=(p.pid,), ready=lambda s: later(lambda: (time.sleep(0.1), s.stop())), follow_forks=False)
    assert proc_state(p.pid)[1] == 0
    # the restarted read was announced while it slept (strace's `read(0, `), and never completed
    (entry,) = r.of(EventKind.SYSCALL_ENTER, "read")
    assert entry.args == ("0",) and not r.of(EventKind.SYSCALL, "read")
    assert p.stdin is not None
    p.stdin.write(b"\x07")
    p.stdin.flush()
    assert p.wait(timeout=10) == 7
    assert r.status == 128 + signal.SIGTERM


def test_attach_group_stopped_stays_stopped(waiter) -> None:
    """RELIABILITY #5: a process stopped before we attach is still stopped after we detach."""
    p = waiter("loop")
    os.kill(p.pid, signal.SIGSTOP)
    while proc_state(p.pid)[0] != "T":
        time.sleep(0.005)
    r = trace(pids=(p.pid,), ready=lambda s: later(lambda: (time.sleep(0.1), s.stop())), follow_forks=False)
    assert not r.of(EventKind.SYSCALL)  # it never ran while we held it
    for _ in range(1000):  # detached, it goes back from the ptrace trap into its group-stop
        if proc_state(p.pid) == ("T", 0):
            break
        time.sleep(0.005)
    assert proc_state(p.pid) == ("T", 0)
    os.kill(p.pid, signal.SIGCONT)
    while proc_state(p.pid)[0] == "T":
        time.sleep(0.005)


def test_attach_to_a_process_already_traced(waiter) -> None:
    """RELIABILITY #11: EPERM named with the tracer's PID; the target is untouched."""
    p = waiter("loop")
    other = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-p", str(p.pid)])
    try:
        while proc_state(p.pid)[1] != other.pid:
            time.sleep(0.005)
        with pytest.raises(TargetError, match=f"already traced by PID {other.pid}") as err:
            trace(pids=(p.pid,))
        assert err.value.exit_code == 2
        assert proc_state(p.pid)[1] == other.pid
    finally:
        other.terminate()
        other.wait()
    assert p.poll() is None


def test_attach_all_threads_with_follow(bins: Path) -> None:
    """RELIABILITY #9 (attach -f -p to a threaded process): every thread attached."""
    exe = build("threads", bins)
    p = subprocess.Popen([exe, "8", "200000000"], stdout=subprocess.DEVNULL)
    try:
        while len(os.listdir(f"/proc/{p.pid}/task")) < 9:
            time.sleep(0.005)
        tids = {int(t) for t in os.listdir(f"/proc/{p.pid}/task")}
        tracer_of: dict[int, int] = {}
        seen: set[int] = set()
        state: dict[str, object] = {"events": 0}

        def ready(session: object) -> None:
            state["session"] = session
            tracer_of.update({t: proc_state(t)[1] for t in tids})

        def on_batch(batch: list) -> None:
            seen.update(e.tid for e in batch if e.kind is EventKind.SYSCALL)
            state["events"] = int(state["events"]) + len(batch)  # type: ignore[call-overload]
            # which threads the scheduler runs meanwhile is its business: enough events, then stop
            if int(state["events"]) > 5000:  # type: ignore[call-overload]
                state["session"].stop()  # type: ignore[attr-defined]

        trace(pids=(p.pid,), ready=ready, on_batch=on_batch)
        assert tracer_of == {t: os.getpid() for t in tids}  # every thread attached before run()
        assert seen and seen <= tids - {p.pid}  # events only from the looping threads
        assert all(proc_state(t)[1] == 0 for t in tids)
    finally:
        p.kill()
        p.wait()


def test_pid_that_exits_during_attach(bins: Path) -> None:
    """A PID that exits while we attach: a clear error or a clean end, never a hang or a crash."""
    for _ in range(20):
        p = subprocess.Popen(["/bin/true"])
        try:
            r = trace(pids=(p.pid,), follow_forks=False)
        except TargetError as exc:
            assert "PID" in exc.message
        else:
            assert r.status in (0, 128 + signal.SIGTERM)
        p.wait()


def test_vfork_in_flight_stop(bins: Path) -> None:
    """RELIABILITY #7: stopping while a vfork child is alive does not deadlock."""
    exe = build("vforker", bins)
    children: list[int] = []
    state: dict[str, object] = {}

    def on_batch(batch: list) -> None:
        for e in batch:
            if e.kind is EventKind.SYSCALL and e.name == "execve" and e.args[0] == '"/bin/sleep"':
                children.append(e.pid)
                state["session"].stop()  # type: ignore[attr-defined]

    r = trace([exe], ready=lambda s: state.update(session=s), on_batch=on_batch)
    assert r.status == 128 + signal.SIGTERM
    assert children
    for c in children:
        assert proc_state(c)[1] == 0
        os.kill(c, signal.SIGKILL)


def test_setuid_program_notice(bins: Path) -> None:
    """RELIABILITY #25: under the seccomp filter (no_new_privs) a set-uid program runs unprivileged and we
    say so once; a root tracer without the filter leaves its privileges alone."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a set-uid file owned by another user")
    where = Path(tempfile.mkdtemp(prefix="unitrace-setuid-"))  # world-searchable, unlike pytest's tmp
    try:
        where.chmod(0o755)
        exe = where / "euid"
        exe.write_bytes(Path(build("euid", bins)).read_bytes())
        os.chown(exe, 65534, 65534)
        exe.chmod(0o4755)
        plain = trace([str(exe)], seccomp=False)
        assert plain.status == 0 and not any("set-id" in e.text for e in plain.events)
        filtered = trace([str(exe)], names={"geteuid", "exit_group"}, seccomp=True)
        assert filtered.status == 1
        notices = [e.text for e in filtered.events if "set-id" in e.text]
        assert len(notices) == 1 and "no_new_privs" in notices[0]
    finally:
        shutil.rmtree(where)


def _run_tracer(args: list[str], cmd: list[str], **kw: object) -> subprocess.Popen:
    return subprocess.Popen([*RUNNER, *args, "--", *cmd], stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).parent.parent), **kw)  # type: ignore[call-overload]


@pytest.mark.parametrize("seccomp,kill_on_exit", [(False, False), (True, False), (False, True)])
def test_tracer_sigkilled(bins: Path, seccomp: bool, kill_on_exit: bool) -> None:
    """RELIABILITY #1 and #2: without the filter the tracee runs on untraced; with it, or with
    --kill-on-exit, it is killed."""
    exe = build("waiter", bins)
    args = ["--seccomp", "write,getppid,exit_group"] if seccomp else []
    args += ["--kill-on-exit"] if kill_on_exit else []
    tracer = _run_tracer(args, [exe, "loop"], stdin=subprocess.DEVNULL)
    assert tracer.stdout is not None
    line = tracer.stdout.readline()
    while not line.startswith("write(1,"):
        line = tracer.stdout.readline()
    pid = int(line.split('"')[1].split("\\n")[0])
    tracer.kill()
    tracer.wait()
    try:
        if seccomp or kill_on_exit:
            for _ in range(1000):
                if proc_state(pid)[0] in ("", "Z"):
                    break
                time.sleep(0.005)
            assert proc_state(pid)[0] in ("", "Z")
        else:
            state, tracer_pid = proc_state(pid)
            assert tracer_pid == 0 and state in ("R", "S")
    finally:
        if proc_state(pid)[0] not in ("", "Z"):
            os.kill(pid, signal.SIGKILL)


def test_fd_hygiene() -> None:
    """RELIABILITY #14: the traced `ls /proc/self/fd` sees 0, 1, 2 (and its own directory fd) plus what
    was inherited on purpose (`9>>/dev/full`), nothing of ours."""
    tracer = subprocess.Popen(["sh", "-c", 'exec "$@" 9>>/dev/full', "sh", *RUNNER, "--",
                               "sh", "-c", "exec ls /proc/self/fd >&2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=str(Path(__file__).parent.parent))
    _, err = tracer.communicate(timeout=60)
    assert sorted(err.split()) == ["0", "1", "2", "3", "9"]
    assert tracer.returncode == 0


def test_stop_from_another_thread_is_prompt(waiter) -> None:
    """stop() from another thread (the Python API, the TUI) ends a wait that would block forever."""
    p = waiter("pause")
    r = trace(pids=(p.pid,), ready=lambda s: later(lambda: (time.sleep(0.1), s.stop())), follow_forks=False)
    assert r.status == 128 + signal.SIGTERM
    for _ in range(1000):  # back in pause(), untraced
        if proc_state(p.pid) == ("S", 0):
            break
        time.sleep(0.005)
    assert proc_state(p.pid) == ("S", 0)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
