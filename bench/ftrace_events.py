"""What the ftrace backend's reader costs, next to a plain trace_pipe reader, ptrace and strace.

Workloads (C): 200k getppid calls; 20k open/read/close of /etc/hostname. Variants, run in alternation
(bench/harness.py): untraced; the anchor, a plain Python reader of the instance's text `trace_pipe` that
only counts lines; `unitrace trace --backend ftrace` streaming to JSON lines; the same counting events in
user space (`count()`, with UNITRACE_FTRACE_HIST=0 so every event crosses the ring buffer); the same with
the count in a kernel hist trigger (where the kernel has them); `unitrace trace --backend ptrace`; and
`strace -f -o /dev/null`. Printed: median wall, ratio to untraced, µs added per syscall; then, per
workload, the events unitrace lost with the default buffer sizing (from its JSON stats line), and the
reader's own throughput: the raw pages of one run replayed through page decoding, Event building and the
probe router, in this process, timed alone (records/s and events/s; a syscall event is two records).
No thresholds: read the numbers.

    python bench/ftrace_events.py [RUNS] [WORKLOAD ...]        (root, tracefs)
    python bench/ftrace_events.py --anchor PROBE... -- CMD...   (the anchor reader, used by the variants)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "_build"
sys.path.insert(0, str(HERE.parent))

C_SOURCES = {
    "getppid_200k": (r"""
#include <sys/syscall.h>
#include <unistd.h>
int main(void) { for (int i = 0; i < 200000; i++) syscall(SYS_getppid); return 0; }
""", ("getppid",), 200_000),
    "open_read_close_20k": (r"""
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        int fd = open("/etc/hostname", O_RDONLY);
        read(fd, buf, sizeof buf);
        close(fd);
    }
    return 0;
}
""", ("openat", "read", "close"), 60_000),
}


def build() -> dict[str, tuple[list[str], tuple[str, ...], int]]:
    BUILD.mkdir(exist_ok=True)
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("gcc is needed to build the benchmark workloads")
    out = {}
    for name, (src, syscalls, count) in C_SOURCES.items():
        c = BUILD / f"ftrace_{name}.c"
        exe = BUILD / f"ftrace_{name}"
        if not exe.exists() or (c.read_text() if c.exists() else "") != src:
            c.write_text(src)
            subprocess.run([gcc, "-O2", "-o", str(exe), str(c)], check=True)
        out[name] = ([str(exe)], syscalls, count)
    return out


# ---- the anchor: the simplest correct reader of the same events -------------------------------------------

def anchor(syscalls: list[str], argv: list[str]) -> int:
    """Create an instance, enable the syscalls' enter and exit events for the child, count trace_pipe lines
    until the child is gone and the pipe is empty. Prints the count on stderr."""
    root = Path("/sys/kernel/tracing")
    inst = root / "instances" / f"ftrace-bench-anchor-{os.getpid()}"
    inst.mkdir()
    try:
        (inst / "buffer_size_kb").write_text("16384")
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(wfd)
            os.read(rfd, 1)
            os.execv(argv[0], argv)
        os.close(rfd)
        (inst / "set_event_pid").write_text(str(pid))
        for sc in syscalls:
            for role in ("enter", "exit"):
                (inst / "events" / "syscalls" / f"sys_{role}_{sc}" / "enable").write_text("1")
        fd = os.open(inst / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        os.close(wfd)
        lines = 0
        done = False
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                chunk = b""
            if chunk:
                lines += chunk.count(b"\n")
                continue
            if done:
                break
            if os.waitpid(pid, os.WNOHANG)[0]:
                (inst / "tracing_on").write_text("0")
                done = True
            else:
                time.sleep(0.001)
        os.close(fd)
        print(f"anchor: {lines} lines", file=sys.stderr)
        return 0
    finally:
        for sc in syscalls:
            for role in ("enter", "exit"):
                (inst / "events" / "syscalls" / f"sys_{role}_{sc}" / "enable").write_text("0")
        inst.rmdir()


# ---- variants -------------------------------------------------------------------------------------------

def variants(argv: list[str], syscalls: tuple[str, ...], hist: bool) -> dict[str, list[str]]:
    probe = "syscall:" + ",".join(syscalls)
    ut = [sys.executable, "-m", "unitrace", "trace"]
    out = {
        "untraced": argv,
        "anchor: python trace_pipe reader": [sys.executable, __file__, "--anchor", *syscalls, "--", *argv],
        "unitrace ftrace -> JSON lines": [*ut, probe, "--backend", "ftrace", "--json", "-o", "/dev/null", "--",
                                          *argv],
        "unitrace ftrace -> count() in user space": ["env", "UNITRACE_FTRACE_HIST=0", *ut, probe + " { count() }",
                                                     "--backend", "ftrace", "-o", "/dev/null", "--", *argv],
    }
    if hist:
        out["unitrace ftrace -> count() in a hist trigger"] = [*ut, probe + " { count() }", "--backend", "ftrace",
                                                               "-o", "/dev/null", "--", *argv]
    out["unitrace ptrace -> JSON lines"] = [*ut, probe, "--backend", "ptrace", "--json", "-o", "/dev/null", "--",
                                            *argv]
    out["strace -f -o /dev/null"] = ["strace", "-f", "-o", "/dev/null", *argv]
    return out


def lost_events(argv: list[str], syscalls: tuple[str, ...]) -> tuple[int, int]:
    """(events, lost) of one `unitrace --backend ftrace --json` run, from its stats line."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        subprocess.run([sys.executable, "-m", "unitrace", "trace", "syscall:" + ",".join(syscalls), "--backend",
                        "ftrace", "--json", "-o", out.name, "--", *argv], check=True, capture_output=True)
        last = Path(out.name).read_text().splitlines()[-1]
    stats = json.loads(last)
    return int(stats["events"]), int(stats["lost"])


def reader_throughput(argv: list[str], syscalls: tuple[str, ...], repeat: int = 3) -> tuple[int, int, float]:
    """Pages of one traced run, replayed `repeat` times through decoding, Event building and routing.
    Returns (records, events, best seconds of one replay)."""
    from unitrace.backends.base import TraceTarget
    from unitrace.backends.ftrace import session as S
    from unitrace.backends.ftrace.ringbuf import decode_page
    from unitrace.lang import parse_probe_args
    from unitrace.runner import ProbeRouter, RunOptions, resolve_program, run

    program = resolve_program(parse_probe_args(["syscall:" + ",".join(syscalls)]))
    pages: list[tuple[bytes, int]] = []
    sessions: list[S.FtraceSession] = []
    real_read = os.read
    real_drain = S.FtraceSession._drain

    def drain(self: S.FtraceSession, bounded: bool = True) -> None:
        if not sessions:
            sessions.append(self)

        def read(fd: int, n: int) -> bytes:
            b = real_read(fd, n)
            if b and fd in self._cpu_of:
                pages.append((b, self._cpu_of[fd]))
            return b

        S.os.read = read  # type: ignore[attr-defined]
        try:
            real_drain(self, bounded)
        finally:
            S.os.read = real_read  # type: ignore[attr-defined]

    class Null:
        def feed(self, batch: list) -> None:
            pass

        def close(self, stats: object) -> None:
            pass

    S.FtraceSession._drain = drain  # type: ignore[method-assign]
    try:
        run(program, TraceTarget(command=tuple(argv)), [Null()], RunOptions(backend="ftrace", handle_signals=False))
    finally:
        S.FtraceSession._drain = real_drain  # type: ignore[method-assign]
    session = sessions[0]
    best = float("inf")
    records = events = 0
    for _ in range(repeat):
        router = ProbeRouter(program.probes, None)
        session._pending.clear()
        records = events = 0
        start = time.perf_counter()
        batch: list = []
        for page, cpu in pages:
            recs: list = []
            missed = decode_page(page, session._layout, session._unpackers, recs)
            records += len(recs)
            session._decode_records(page, cpu, missed, recs, batch)
            if len(batch) >= 4096:
                events += len(router.route(batch))
                batch = []
        events += len(router.route(batch))
        best = min(best, time.perf_counter() - start)
    return records, events, best


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--anchor":
        sep = sys.argv.index("--")
        raise SystemExit(anchor(sys.argv[2:sep], sys.argv[sep + 1:]))
    from bench.harness import compare, report
    from unitrace.backends.ftrace.backend import hist_features

    if os.geteuid() != 0:
        raise SystemExit("the ftrace backend needs root")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wanted = sys.argv[2:]
    hist = hist_features().supported
    strace = subprocess.run(["strace", "-V"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"kernel: {os.uname().release}, cpus: {os.cpu_count()}, {strace}, runs per variant: {runs}, "
          f"hist triggers: {'yes' if hist else 'no'}")
    for name, (argv, syscalls, count) in build().items():
        if wanted and name not in wanted:
            continue
        print(f"\n== {name}: {count} syscalls ({', '.join(syscalls)}) ==")
        result = compare(name, variants(argv, syscalls, hist), runs=runs, events=count)
        report([result], baseline="untraced")
        events, lost = lost_events(argv, syscalls)
        print(f"  unitrace ftrace, default buffers: {events} events, {lost} lost")
        records, routed, seconds = reader_throughput(argv, syscalls)
        print(f"  reader alone (pages -> Events -> router, best of 3 replays): {records / seconds / 1e6:.2f} M "
              f"records/s, {routed / seconds / 1e6:.2f} M events/s ({seconds / max(routed, 1) * 1e6:.2f} µs/event)")


if __name__ == "__main__":
    main()
