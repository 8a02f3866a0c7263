"""The bpf backend against this machine's kernel (BPF, tracepoints and uprobes exist here: no skips)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bpf_support import our_programs
from unitrace.backends.base import TraceTarget
from unitrace.backends.bpf.backend import BpfBackend
from unitrace.errors import Span, UnitraceError
from unitrace.events import EventKind
from unitrace.model.expr import Binary, Int, Name
from unitrace.model.probe import AggregateAction, Probe, ProbePoint, TracepointTarget, UserTarget

S = Span(1, 1)
PROG = textwrap.dedent("""
    #include <stdlib.h>
    #include <unistd.h>
    #include <sys/wait.h>
    int main(int argc, char **argv) {
        /* sizes: 5 x 100, 3 x 5000, 1 x 70000 in the parent; a child and grandchild exec /bin/true */
        for (int i = 0; i < 5; i++) { void *volatile p = malloc(100); free(p); }
        for (int i = 0; i < 3; i++) { void *volatile p = malloc(5000); free(p); }
        { void *volatile p = malloc(70000); free(p); }
        pid_t c = fork();
        if (c == 0) {
            pid_t g = fork();
            if (g == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
            waitpid(g, 0, 0);
            _exit(0);
        }
        waitpid(c, 0, 0);
        return 4;
    }
""")


def _bpf_ready() -> str | None:
    if os.geteuid() != 0:
        return "BPF needs root here (kernel.unprivileged_bpf_disabled)"
    try:
        from unitrace.backends.bpf.session import import_bcc

        import_bcc()
    except UnitraceError as exc:
        return exc.message
    return None


pytestmark = pytest.mark.skipif(_bpf_ready() is not None, reason=_bpf_ready() or "")


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("bpf")
    (d / "p.c").write_text(PROG)
    subprocess.run(["gcc", "-O1", "-o", str(d / "p"), str(d / "p.c")], check=True)
    return str(d / "p")


def _our_programs() -> list[str]:
    return our_programs()


def test_follow_forks_in_the_kernel(prog: str) -> None:
    probe = Probe((ProbePoint("tracepoint", TracepointTarget("sched", "sched_process_exec")),))
    backend = BpfBackend()
    got: list = []
    with backend.start(backend.compile([probe], {}), TraceTarget(command=(prog,), follow_forks=True),
                       got.extend, {}) as session:
        rc = session.run()
    assert rc == 4
    files = [e.fields.get("filename") for e in got if e.kind is EventKind.TRACEPOINT]
    assert files[0] == prog
    assert "/bin/true" in files  # exec'd by a grandchild: only the kernel-side pid set sees it
    assert session.stats.lost == 0


def test_in_kernel_histogram_by_comm(prog: str) -> None:
    probe = Probe((ProbePoint("user", UserTarget("libc", "malloc")),),
                  predicate=Binary(S, ">=", Name(S, "arg0"), Int(S, 100)),
                  actions=(AggregateAction("hist", Name(S, "arg0"), (Name(S, "comm"),)),))
    backend = BpfBackend()
    with backend.start(backend.compile([probe], {}), TraceTarget(command=(prog,)), lambda b: None, {}) as s:
        s.run()
    rows = [r for r in s.aggregates if r.keys == (Path(prog).name,)]
    by_bucket = {r.bucket: r.count for r in rows}
    # buckets: [64,128) -> 6+2=8, [4096,8192) -> 12+2=14, [65536,131072) -> 16+2=18
    assert by_bucket.get(8) == 5
    assert by_bucket.get(14) == 3
    assert by_bucket.get(18) == 1
    assert sum(r.total for r in rows if r.bucket in (8, 14, 18)) == 500 + 15000 + 70000


def test_attach_failure_is_all_or_nothing(prog: str) -> None:
    good = Probe((ProbePoint("user", UserTarget("libc", "malloc")),))
    bad = Probe((ProbePoint("user", UserTarget("libc", "no_such_function_xyz")),))
    backend = BpfBackend()
    with pytest.raises(UnitraceError) as info:
        backend.compile([good, bad], {})
    assert "no function 'no_such_function_xyz'" in info.value.message
    # a kernel function that does not exist passes compile (kallsyms is the kernel's business) and fails
    # at attach: the uprobe attached before it must be gone
    from unitrace.model.probe import KernelTarget

    worse = Probe((ProbePoint("kernel", KernelTarget("no_such_kernel_function_xyz")),))
    compiled = backend.compile([good, worse], {})
    with pytest.raises(UnitraceError) as info, backend.start(compiled, TraceTarget(command=(prog,)),
                                                             lambda b: None, {}):
        pass
    assert "no_such_kernel_function_xyz" in info.value.message
    assert _our_programs() == []


def test_sigkilled_tracer_leaves_no_program(prog: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from unitrace.backends.base import TraceTarget
        from unitrace.backends.bpf.backend import BpfBackend
        from unitrace.model.probe import Probe, ProbePoint, UserTarget
        b = BpfBackend()
        s = b.start(b.compile([Probe((ProbePoint("user", UserTarget("libc", "malloc")),))], {}),
                    TraceTarget(system_wide=True), lambda batch: None, {})
        s.__enter__()
        print("ready", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert _our_programs(), "bpftool does not show the live session's program"
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert _our_programs() == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


WRITES = textwrap.dedent("""
    #include <unistd.h>
    int main(void) {
        static char buf[64];
        for (int n = 7; n <= 11; n++) write(-1, buf, n);   /* EBADF: ret -9 each time */
        usleep(2000);
        return 0;
    }
""")


def test_division_and_func_keys_in_the_kernel_match_user_space(build_c, tmp_path: Path) -> None:
    """Signed and unsigned `/` and `%` computed by BPF (no `sdiv`: LLVM refuses it) and `func` keys
    (syscall numbers in the kernel's maps) print exactly what the ptrace backend computes in user space."""
    from tests.run_support import unitrace

    exe = str(build_c(WRITES, name="writes"))
    probes = ("syscall:write { @q[arg2] = sum(-arg2 / 3); @r[arg2] = sum(-arg2 % 4); "
              "@n[arg2] = sum(ret / 2 + ret % 2 * 100); @u[arg2] = sum(arg2 / -2 + arg2 % 3 * 10) }",
              "syscall:write,clock_nanosleep { @calls[func] = count(); @us[func] = max((duration / 1000) / 1000000) }")
    outs = {}
    for backend in ("ptrace", "bpf"):
        proc = unitrace("trace", *probes, "--backend", backend, "--", exe, tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outs[backend] = proc.stdout
    compiled = unitrace("compile", *probes, "--backend", "bpf", tmp=tmp_path)
    # all six aggregations run in the kernel (nothing streamed), with both kinds of division
    assert compiled.stdout.count("ut_aggs.lookup_or_try_init") == 6 and "ut_emit(ctx, r," not in compiled.stdout
    assert "ut_sdiv(" in compiled.stdout and "ut_smod(" in compiled.stdout and "(u64)" in compiled.stdout
    assert outs["bpf"] == outs["ptrace"]
    assert "@q[7]: -2" in outs["bpf"] and "@r[9]: -1" in outs["bpf"] and "@n[11]: -104" in outs["bpf"]
    assert "@calls[write]: 5" in outs["bpf"] and "@us[clock_nanosleep]: 0" in outs["bpf"]
