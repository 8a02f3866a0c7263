"""What tracing costs on the kernel backends, next to bpftrace and a plain trace_pipe reader.

Workloads: a 200k-getppid loop and 50k open/fstat/close (C). Variants, each run in alternation with the
others (bench/harness.py): untraced; bpftrace counting in the kernel; unitrace counting in the kernel (bpf);
bpftrace printf per event; unitrace streaming every syscall, decoded, to a JSON-lines file (bpf, ftrace);
a plain Python reader of raw_syscalls through trace_pipe (the anchor for the ftrace backend). Printed: median
wall time, ratio to untraced, µs added per syscall, and for each unitrace stream the events written and lost
(one extra run with the stats line read back). No thresholds: read the ratios.

Then what each tracer adds inside the traced program, start-up excluded (the getppid loop timing itself);
and, side by side in the same run: start-up to the first event (tracer launched -> the traced command's
first instruction, which the kernel backends hold until tracing is on), for bpftrace and unitrace bpf; and
the consumer's rate (events written per second of the streaming run). Last, the bpf consumer alone: the
ring buffer's copy-out rate in a live run, and that run's records replayed through decoding and the JSON
sink (records/s).

    python bench/kernel_backends.py [RUNS] [WORKLOAD ...]      (as root)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "_build"
sys.path.insert(0, str(HERE.parent))

C_SOURCES = {
    "getppid_loop": r"""
#include <sys/syscall.h>
#include <unistd.h>
int main(void) { for (int i = 0; i < 200000; i++) syscall(SYS_getppid); return 0; }
""",
    "first_instruction": r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec t; clock_gettime(CLOCK_REALTIME, &t);
    printf("%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    return 0;
}
""",
    "getppid_timed": r"""
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 200000; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "loop_ns %lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
}
""",
    "open_fstat_close": r"""
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    for (int i = 0; i < 50000; i++) { int fd = open("/etc/hostname", O_RDONLY); fstat(fd, &st); close(fd); }
    return 0;
}
""",
}

# The anchor: what a plain Python reader of tracefs costs (an instance of our own, raw_syscalls scoped to
# the command with set_event_pid, every line of trace_pipe read and counted).
TRACE_PIPE_READER = r"""
import os, select, signal, sys, threading, time
T = "/sys/kernel/tracing"; I = f"{T}/instances/unitrace-bench-anchor-{os.getpid()}"
def stop(signo, frame):
    raise SystemExit(128 + signo)  # SIGTERM/SIGINT/SIGHUP: run the finally below, which removes the instance
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, stop)
def w(p, s):
    fd = os.open(f"{I}/{p}", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC); os.write(fd, s.encode()); os.close(fd)
child = 0
pipe = None
reader = None
try:
    os.mkdir(I)
    w("buffer_size_kb", "32768")
    r, wfd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(wfd); os.read(r, 1); os.execv(sys.argv[1], sys.argv[1:]); os._exit(127)
    os.close(r)
    w("set_event_pid", str(child)); w("options/event-fork", "1")
    w("events/raw_syscalls/sys_enter/enable", "1"); w("events/raw_syscalls/sys_exit/enable", "1")
    count = [0]
    done = threading.Event()
    pipe = os.open(f"{I}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    def read_all():  # every line read and counted; never blocked for long, so it can always be told to stop
        while True:
            ready, _, _ = select.select([pipe], [], [], 0.1)
            try:
                data = os.read(pipe, 1 << 20) if ready else b""
            except BlockingIOError:
                data = b""
            if data:
                count[0] += data.count(b"\n")
            elif done.is_set():
                return
    reader = threading.Thread(target=read_all, daemon=True); reader.start()
    os.close(wfd)
    os.waitpid(child, 0)
    child = 0
finally:
    if child:
        try:
            os.kill(child, signal.SIGKILL); os.waitpid(child, 0)
        except OSError:
            pass
    try:
        w("tracing_on", "0")
        w("events/enable", "0")
    except OSError:
        pass
    if reader is not None:
        done.set()
        reader.join(10)
    if pipe is not None:
        os.close(pipe)  # an open trace_pipe keeps the instance busy: rmdir fails with EBUSY
    for _ in range(100):
        try:
            os.rmdir(I); break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.05)
"""
ANCHOR_PREFIX = "unitrace-bench-anchor-"


def remove_stale_anchors() -> list[str]:
    """Instances a killed anchor reader left behind (its pid is in the name and no longer alive)."""
    root = Path("/sys/kernel/tracing/instances")
    removed = []
    for inst in sorted(root.glob(ANCHOR_PREFIX + "*")) if root.is_dir() else ():
        pid = inst.name[len(ANCHOR_PREFIX):]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue
        try:
            (inst / "events" / "enable").write_text("0")
            inst.rmdir()
            removed.append(inst.name)
        except OSError as exc:
            print(f"  could not remove {inst}: {exc}", file=sys.stderr)
    return removed


def build() -> dict[str, list[str]]:
    BUILD.mkdir(exist_ok=True)
    out: dict[str, list[str]] = {}
    for name, src in C_SOURCES.items():
        c, exe = BUILD / f"{name}.c", BUILD / name
        if not exe.exists() or not c.exists() or c.read_text() != src:
            c.write_text(src)
            subprocess.run(["gcc", "-O2", "-o", str(exe), str(c)], check=True)
        out[name] = [str(exe)]
    return out


def variants(argv: list[str]) -> dict[str, list[str]]:
    ut = [sys.executable, "-m", "unitrace", "trace"]
    cmd = " ".join(argv)
    v = {"untraced": argv}
    if shutil.which("bpftrace"):
        v["bpftrace count"] = ["bpftrace", "-q", "-e",
                               "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @ = count(); }", "-c", cmd]
        v["bpftrace printf"] = ["sh", "-c", "exec bpftrace -q -e 'tracepoint:raw_syscalls:sys_enter /pid == cpid/ "
                                f"{{ printf(\"%d\\n\", args->id); }}' -c '{cmd}' >/dev/null"]
    v["unitrace bpf count"] = [*ut, "syscall:* { count() }", "--backend", "bpf", "-o", "/dev/null", "--", *argv]
    v["unitrace bpf stream"] = [*ut, "syscall:*", "--backend", "bpf", "--json", "-o", "/dev/null", "--", *argv]
    v["trace_pipe reader"] = [sys.executable, "-c", TRACE_PIPE_READER, *argv]
    v["unitrace ftrace stream"] = [*ut, "syscall:*", "--backend", "ftrace", "--json", "-o", "/dev/null", "--",
                                   *argv]
    return v


def stream_stats(backend: str, argv: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "events.jsonl"
        subprocess.run([sys.executable, "-m", "unitrace", "trace", "syscall:*", "--backend", backend, "--json",
                        "-o", str(out), "--", *argv], check=False, capture_output=True)
        if not out.exists():
            return {}
        last = out.read_text().splitlines()[-1]
        return json.loads(last)


def in_loop(argv: list[str], runs: int) -> None:
    """What each tracer adds inside the traced program, without its start-up: the 200k-getppid loop times
    itself (CLOCK_MONOTONIC around the loop, printed on stderr). Variants in alternation, medians."""
    import re
    import statistics

    chosen = {k: v for k, v in variants(argv).items() if k != "trace_pipe reader"}
    samples: dict[str, list[int]] = {k: [] for k in chosen}
    for _ in range(runs):
        for name, cmd in chosen.items():
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            m = re.search(r"loop_ns (\d+)", proc.stderr)
            if m:
                samples[name].append(int(m.group(1)))
    print("\n== inside the traced program: the 200k-getppid loop timing itself (median) ==")
    base = statistics.median(samples["untraced"]) if samples.get("untraced") else None
    for name, ns in samples.items():
        if not ns:
            print(f"  {name:28s} no timing (the command failed)")
            continue
        mid = statistics.median(ns)
        added = f"{(mid - base) / 200_000 / 1000:6.2f} µs/call added" if base is not None and name != "untraced" else ""
        print(f"  {name:28s} {mid / 1e6:8.1f} ms  {added}")


def consumer(argv: list[str], probe_text: str = "syscall:*") -> None:
    """The bpf consumer alone, in this process: one live run of `unitrace trace PROBE --json` (the session,
    the probe router and the JSON-lines sink to /dev/null) with the ring buffer's copy-out timed (records
    sliced from the mapped pages), then every record of that run replayed through decoding, routing and
    the JSON sink, timed alone (best of 3). Reaches into the session's internals: a measurement, not an API."""
    import time

    from unitrace.backends.base import TraceTarget
    from unitrace.backends.bpf.backend import BpfBackend
    from unitrace.lang import parse_program
    from unitrace.runner import ProbeRouter, resolve_program
    from unitrace.sinks.jsonl import JsonLinesSink

    prog = resolve_program(parse_program(probe_text))
    backend = BpfBackend()
    compiled = backend.compile(prog.probes, {})

    def emit_to_json() -> object:
        sink = JsonLinesSink(open(os.devnull, "w"))  # noqa: SIM115
        router = ProbeRouter(prog.probes, compiled.data["residuals"])

        def emit(batch: list) -> None:  # type: ignore[type-arg]
            routed = router.route(batch)
            if routed:
                sink.feed(routed)
        return emit

    copied: list[bytes] = []
    took = [0.0]
    session = backend.start(compiled, TraceTarget(command=tuple(argv)), emit_to_json(), {})  # type: ignore[arg-type]
    with session:
        reader = session._reader
        if reader is not None:
            read = reader.read

            def timed_read(out: list[bytes]) -> int:
                t0 = time.perf_counter()
                n = read(out)
                took[0] += time.perf_counter() - t0
                copied.extend(out[len(out) - n:])
                return n
            reader.read = timed_read  # type: ignore[method-assign]
        t0 = time.perf_counter()
        session.run()
        wall = time.perf_counter() - t0
    if not copied:
        print("  (no direct ring-buffer reader here: nothing to time)")
        return
    sizes = [len(r) for r in copied]
    print(f"  live: {session.stats.events} events, {session.stats.lost} lost, {wall:.2f} s from release to the "
          f"last line; records {min(sizes)}-{max(sizes)} bytes, mean {sum(sizes) / len(sizes):.0f}")
    print(f"  copy-out from the ring buffer: {len(copied) / took[0]:,.0f} records/s")
    replay = backend.start(compiled, TraceTarget(command=tuple(argv)), emit_to_json(), {})  # type: ignore[arg-type]
    replay._drain = lambda: None  # type: ignore[method-assign]
    best = float("inf")
    for _ in range(4):  # the first one warms the decoder's caches
        replay._raw = list(copied)
        t0 = time.perf_counter()
        replay._decode_pending()
        replay._flush()
        best = min(best, time.perf_counter() - t0)
    print(f"  decode + route + JSON lines: {len(copied) / best:,.0f} records/s ({best * 1e6 / len(copied):.2f} µs each)")


def startup(exe: str, runs: int) -> dict[str, float]:
    """Median seconds from launching each tracer to the traced command's first instruction."""
    import statistics
    import time

    ut = [sys.executable, "-m", "unitrace", "trace"]
    tracers = {
        "bpftrace": ["bpftrace", "-q", "-e", "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @ = count(); }",
                     "-c", exe],
        "unitrace bpf": [*ut, "syscall:* { count() }", "--backend", "bpf", "-o", "/dev/null", "--", exe],
        "unitrace strace --backend bpf": [sys.executable, "-m", "unitrace", "strace", "--backend", "bpf",
                                          "-o", "/dev/null", "--", exe],
    }
    out: dict[str, float] = {}
    for name, argv in tracers.items():
        if not shutil.which(argv[0]) and argv[0] != sys.executable:
            continue
        times = []
        for _ in range(runs):
            t0 = time.time_ns()
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            first = [ln for ln in proc.stdout.split() if ln.isdigit()]
            if first:
                times.append((int(first[0]) - t0) / 1e9)
        if times:
            out[name] = statistics.median(times)
    return out


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the kernel backends need root")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wanted = sys.argv[2:]
    print(f"kernel: {os.uname().release}, cpus: {os.cpu_count()}, runs per variant: {runs}")
    for name in remove_stale_anchors():
        print(f"removed a leftover tracefs instance: {name}")
    try:
        run(runs, wanted)
    finally:
        remove_stale_anchors()


def run(runs: int, wanted: list[str]) -> None:
    from bench.harness import compare, report

    built = build()
    first = built.pop("first_instruction")[0]
    timed = built.pop("getppid_timed")
    for name, argv in built.items():
        if wanted and name not in wanted:
            continue
        syscalls = {"getppid_loop": 200_000, "open_fstat_close": 150_000}[name]
        print(f"\n== {name}: about {syscalls} syscalls ==")
        result = compare(name, variants(argv), runs=runs, events=syscalls)
        report([result], baseline="untraced")
        for backend in ("bpf", "ftrace"):
            stats = stream_stats(backend, argv)
            wall = result.median(f"unitrace {backend} stream", "wall_s")
            rate = f", consumer {int(stats['events']) / wall:,.0f} events/s" if stats.get("events") and wall else ""
            print(f"  unitrace {backend} stream: {stats.get('events')} events written, {stats.get('lost')} lost{rate}")
    if not wanted or "getppid_loop" in wanted:
        in_loop(timed, runs)
    for name, argv in built.items():
        if not wanted or name in wanted:
            print(f"\n== the bpf consumer alone, {name} (unitrace trace 'syscall:*' --json, in this process) ==")
            consumer(argv)
    print("\n== start-up to the traced command's first instruction (median) ==")
    for name, seconds in startup(first, runs).items():
        print(f"  {name:32s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
