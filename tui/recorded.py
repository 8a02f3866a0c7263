"""A deterministic recorded session of the bundled demo program, as the backends would deliver it.

The demo program reads its configuration (one file is missing), forks workers that each read a data file,
write a result and exit; one worker execs a helper; the parent gets SIGCHLD for each and finally a SIGUSR1
that it handles. Some events carry user stacks whose outer frames were found by stack scanning
(`reliable=False`), as happens with frame-pointer-less libc.

The recording holds *every* syscall the program made (probe = -1, as a backend emits them before routing),
so probes added later select from it exactly as a live router would. `recorded_session(n)` repeats the
worker loop with fresh pids until n events exist: benchmarks use millions, tests a few hundred. Everything
derives from a seeded PRNG and a fixed clock, so two calls return equal events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from unitrace.events import Event, EventKind, Frame

# 2024-03-01 12:00:00 UTC: a fixed start so screens and snapshots never change.
START_NS = 1_709_294_400_000_000_000
DEMO_PATH = "/work/main/demo/_build/demo"
ROOT_PID = 4242

ERRNO_TEXT = {
    2: ("ENOENT", "No such file or directory"),
    4: ("EINTR", "Interrupted system call"),
    11: ("EAGAIN", "Resource temporarily unavailable"),
    13: ("EACCES", "Permission denied"),
}

# Kernel log lines recorded during the session (the kernel panel decodes them).
KERNEL_LOG = """\
[  812.114203] ------------[ cut here ]------------
[  812.114210] WARNING: CPU: 1 PID: 4242 at kernel/trace/ftrace.c:2178 ftrace_bug+0x1ad/0x2a0
[  812.114290] Modules linked in: 9p netfs 9pnet_virtio virtio_pci
[  812.114301] CPU: 1 PID: 4242 Comm: demo Not tainted 6.18.0 #1
[  812.114305] RIP: 0010:ftrace_bug+0x1ad/0x2a0
[  812.114340] Call Trace:
[  812.114342]  <TASK>
[  812.114345]  ftrace_replace_code+0x1c1/0x1e0
[  812.114351]  ftrace_modify_all_code+0xc2/0x150
[  812.114355]  ? __pfx_ftrace_modify_all_code+0x10/0x10
[  812.114360]  ftrace_run_update_code+0x1a/0x70
[  812.114366]  ftrace_startup+0xd6/0x190
[  812.114370]  </TASK>
[  812.114372] ---[ end trace 0000000000000000 ]---
"""


def _demo_stack(rng: random.Random, leaf: str, leaf_line: int) -> list[Frame]:
    """A user stack: libc wrapper, demo functions with source lines, then scanned (unreliable) frames."""
    base = 0x5555_5555_4000
    libc = 0x7F3A_1C20_0000
    frames = [
        Frame(libc + 0x11_4A7D + rng.randrange(0, 0x40), "__libc_" + leaf, rng.randrange(0x10, 0x60),
              "libc.so.6", how="cfi"),
        Frame(base + 0x1389, leaf, 0x49, "demo", "demo/demo.c", leaf_line, how="cfi"),
        Frame(base + 0x15E2, "run_worker", 0x82, "demo", "demo/demo.c", 88, how="cfi"),
        Frame(base + 0x1701, "main", 0xB1, "demo", "demo/demo.c", 131, how="fp"),
        Frame(libc + 0x2_724A, "__libc_start_call_main", 0x7A, "libc.so.6", reliable=False, how="scan"),
        Frame(libc + 0x2_7305, "__libc_start_main", 0x85, "libc.so.6", reliable=False, how="scan"),
        Frame(base + 0x10A5, "_start", 0x25, "demo", reliable=False, how="scan"),
    ]
    return frames


class _Recorder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = START_NS
        self.events: list[Event] = []
        self.next_fd: dict[int, int] = {}

    def tick(self, lo_us: int = 2, hi_us: int = 40) -> int:
        self.now += self.rng.randrange(lo_us, hi_us) * 1000
        return self.now

    def syscall(self, pid: int, name: str, args: tuple[str, ...], raw: tuple[int, ...], ret: int,
                *, errno: int = 0, comm: str = "demo", dur_us: tuple[int, int] = (1, 30),
                stack: bool = False, leaf: str = "", leaf_line: int = 0,
                fields: dict[str, object] | None = None) -> Event:
        ts = self.tick()
        dur = self.rng.randrange(*dur_us) * 1000 + self.rng.randrange(0, 1000)
        if errno:
            sym, text = ERRNO_TEXT[errno]
            ret_text = f"-1 {sym} ({text})"
            ret = -errno
        else:
            ret_text = hex(ret) if name in ("mmap", "brk") else str(ret)
        ev = Event(EventKind.SYSCALL, ts, pid, pid, name, cpu=pid % 2, comm=comm, args=args, raw_args=raw,
                   ret=ret, ret_text=ret_text, errno=errno, duration_ns=dur,
                   stack=_demo_stack(self.rng, leaf or name, leaf_line or 60) if stack else None,
                   fields=dict(fields or {}))
        self.now += dur
        self.events.append(ev)
        return ev

    def life(self, kind: EventKind, pid: int, name: str, *, comm: str = "demo", ret: int | None = None,
             text: str = "", fields: dict[str, object] | None = None) -> Event:
        ev = Event(kind, self.tick(), pid, pid, name, cpu=pid % 2, comm=comm, ret=ret, text=text,
                   fields=dict(fields or {}))
        self.events.append(ev)
        return ev

    def call(self, pid: int, symbol: str, args: tuple[str, ...], ret: int, dur_us: int) -> None:
        ts = self.tick()
        self.events.append(Event(EventKind.CALL, ts, pid, pid, symbol, cpu=pid % 2, comm="demo", args=args,
                                 stack=_demo_stack(self.rng, symbol, 42)[1:]))
        self.now += dur_us * 1000
        self.events.append(Event(EventKind.RETURN, self.now, pid, pid, symbol, cpu=pid % 2, comm="demo",
                                 ret=ret, ret_text=str(ret), duration_ns=dur_us * 1000))

    def fd(self, pid: int) -> int:
        n = self.next_fd.get(pid, 3)
        self.next_fd[pid] = n + 1
        return n

    # ---- the program -----------------------------------------------------------------------------

    def startup(self) -> None:
        p = ROOT_PID
        self.life(EventKind.NOTICE, p, "", text=f"Process {p} started: {DEMO_PATH}")
        self.syscall(p, "execve", (f'"{DEMO_PATH}"', f'["{DEMO_PATH}", "--workers", "3"]', "0x7ffd3a1c2f48 /* 12 vars */"),
                     (0x5555_5555_6000, 0x7FFD_3A1C_2F20, 0x7FFD_3A1C_2F48), 0, dur_us=(200, 400),
                     fields={"filename": DEMO_PATH})
        self.syscall(p, "brk", ("NULL",), (0,), 0x5555_5556_A000)
        self.syscall(p, "mmap", ("NULL", "8192", "PROT_READ|PROT_WRITE", "MAP_PRIVATE|MAP_ANONYMOUS", "-1", "0"),
                     (0, 8192, 3, 0x22, 0xFFFF_FFFF_FFFF_FFFF, 0), 0x7F3A_1C41_5000)
        self.syscall(p, "access", ('"/etc/ld.so.preload"', "R_OK"), (0x7F3A_1C43_9B20, 4), 0, errno=2)
        for lib in ("/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6"):
            fd = self.fd(p)
            self.syscall(p, "openat", ("AT_FDCWD", f'"{lib}"', "O_RDONLY|O_CLOEXEC"),
                         (0xFFFF_FF9C, 0x7F3A_1C43_A000, 0x80000), fd, fields={"path": lib})
            self.syscall(p, "read", (str(fd), '"\\177ELF\\2\\1\\1\\3\\0\\0\\0\\0\\0\\0\\0\\0"...', "832"),
                         (fd, 0x7FFD_3A1C_1E00, 832), 832)
            self.syscall(p, "close", (str(fd),), (fd,), 0)
            self.next_fd[p] = fd
        self.call(p, "parse_config", ('"/etc/demo.conf"',), -1, 35)
        self.syscall(p, "openat", ("AT_FDCWD", '"/etc/demo.conf"', "O_RDONLY"), (0xFFFF_FF9C, 0x5555_5555_7004, 0),
                     0, errno=2, stack=True, leaf="parse_config", leaf_line=41, fields={"path": "/etc/demo.conf"})
        fd = self.fd(p)
        self.syscall(p, "openat", ("AT_FDCWD", '"/root/.demorc"', "O_RDONLY"), (0xFFFF_FF9C, 0x5555_5556_A2A0, 0),
                     fd, stack=True, leaf="parse_config", leaf_line=44, fields={"path": "/root/.demorc"})
        self.syscall(p, "fstat", (str(fd), "{st_mode=S_IFREG|0644, st_size=58, ...}"), (fd, 0x7FFD_3A1C_2C00), 0)
        self.syscall(p, "read", (str(fd), '"workers = 3\\nmode = fast\\nlog = /tmp/demo.log\\n"...', "4096"),
                     (fd, 0x5555_5556_A4C0, 4096), 58)
        self.syscall(p, "close", (str(fd),), (fd,), 0)
        self.next_fd[p] = fd
        self.syscall(p, "rt_sigaction", ("SIGCHLD", "{sa_handler=0x555555555a10, sa_mask=[], sa_flags=SA_RESTORER|SA_RESTART, sa_restorer=0x7f3a1c23b050}", "NULL", "8"),
                     (17, 0x7FFD_3A1C_2D10, 0, 8), 0)
        self.syscall(p, "rt_sigaction", ("SIGUSR1", "{sa_handler=0x555555555a60, sa_mask=[], sa_flags=SA_RESTORER, sa_restorer=0x7f3a1c23b050}", "NULL", "8"),
                     (10, 0x7FFD_3A1C_2D10, 0, 8), 0)

    def worker_round(self, round_no: int, first_child: int) -> None:
        p = ROOT_PID
        rng = self.rng
        children = [first_child + i for i in range(3)]
        for i, child in enumerate(children):
            self.syscall(p, "clone", ("child_stack=NULL", "flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
                                      "child_tidptr=0x7f3a1c1f7a10"), (0x1200011, 0, 0, 0x7F3A_1C1F_7A10, 0),
                         child, dur_us=(60, 140), stack=(i == 0), leaf="fork", leaf_line=72)
            self.life(EventKind.FORK, p, "fork", fields={"child": child})
        for i, child in enumerate(children):
            if i == 2 and round_no % 2 == 0:
                # This worker execs the helper that compresses the results.
                self.syscall(child, "execve", ('"/usr/bin/gzip"', '["gzip", "-1", "/tmp/demo.out"]', "0x7ffd3a1c2f48 /* 12 vars */"),
                             (0x5555_5556_B000, 0x7FFD_3A1C_2E00, 0x7FFD_3A1C_2F48), 0, dur_us=(300, 600),
                             fields={"filename": "/usr/bin/gzip"})
                self.life(EventKind.EXEC, child, "execve", comm="gzip",
                          fields={"filename": "/usr/bin/gzip", "argv": ["gzip", "-1", "/tmp/demo.out"],
                                  "old_tid": child})
                fd = self.fd(child)
                self.syscall(child, "openat", ("AT_FDCWD", '"/tmp/demo.out"', "O_RDONLY|O_NOCTTY|O_NONBLOCK"),
                             (0xFFFF_FF9C, 0x7FFD_3A1C_3F00, 0x8900), fd, comm="gzip", fields={"path": "/tmp/demo.out"})
                self.syscall(child, "read", (str(fd), '"result 0\\nresult 1\\n"...', "32768"), (fd, 0x5555_5557_0000, 32768),
                             rng.randrange(200, 900), comm="gzip", dur_us=(5, 60))
                self.syscall(child, "close", (str(fd),), (fd,), 0, comm="gzip")
                self.syscall(child, "exit_group", ("0",), (0,), 0, comm="gzip")
                self.life(EventKind.EXIT, child, "exit", comm="gzip", ret=0, text="+++ exited with 0 +++")
                continue
            path = f"/var/lib/demo/data{(round_no * 3 + i) % 7}.bin"
            missing = (round_no + i) % 5 == 4
            if missing:
                self.syscall(child, "openat", ("AT_FDCWD", f'"{path}"', "O_RDONLY"), (0xFFFF_FF9C, 0x5555_5556_A600, 0),
                             0, errno=2, stack=True, leaf="load_data", leaf_line=57, fields={"path": path})
                self.syscall(child, "write", ("2", f'"demo: {path}: No such file or directory\\n"', str(len(path) + 34)),
                             (2, 0x7FFD_3A1C_2A00, len(path) + 34), len(path) + 34)
                self.syscall(child, "exit_group", ("1",), (1,), 0)
                self.life(EventKind.EXIT, child, "exit", ret=1, text="+++ exited with 1 +++")
                continue
            fd = self.fd(child)
            self.syscall(child, "openat", ("AT_FDCWD", f'"{path}"', "O_RDONLY"), (0xFFFF_FF9C, 0x5555_5556_A600, 0), fd,
                         stack=(i == 0), leaf="load_data", leaf_line=55, fields={"path": path})
            for _ in range(rng.randrange(2, 5)):
                n = rng.choice((4096, 4096, 4096, 1733))
                self.syscall(child, "read", (str(fd), '"\\x7fDEMO\\x01\\x00\\x00\\x10"...', "4096"), (fd, 0x5555_5556_C000, 4096),
                             n, dur_us=(3, 90))
            self.syscall(child, "read", (str(fd), '""', "4096"), (fd, 0x5555_5556_C000, 4096), 0)
            self.syscall(child, "close", (str(fd),), (fd,), 0)
            if rng.random() < 0.3:
                self.syscall(child, "futex", ("0x55555556a0c0", "FUTEX_WAIT_PRIVATE", "0", "NULL"),
                             (0x5555_5556_A0C0, 0x80, 0, 0), 0, errno=11, dur_us=(1, 5))
            self.syscall(child, "nanosleep", ("{tv_sec=0, tv_nsec=2000000}", "NULL"), (0x7FFD_3A1C_2B00, 0), 0,
                         dur_us=(2000, 2300))
            out = f"result {round_no * 3 + i}\\n"
            self.syscall(child, "write", ("1", f'"{out}"', str(len(out) - 1)), (1, 0x5555_5556_A800, len(out) - 1),
                         len(out) - 1, stack=(i == 1), leaf="report", leaf_line=96)
            self.syscall(child, "exit_group", ("0",), (0,), 0)
            self.life(EventKind.EXIT, child, "exit", ret=0, text="+++ exited with 0 +++")
        for child in children:
            self.life(EventKind.SIGNAL, p, "SIGCHLD",
                      fields={"signal": "SIGCHLD", "si_code": "CLD_EXITED", "si_pid": child, "si_status": 0},
                      text=f"--- SIGCHLD {{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid={child}, si_uid=0}} ---")
            self.syscall(p, "wait4", (str(child), "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]", "0", "NULL"),
                         (child, 0x7FFD_3A1C_2C5C, 0, 0), child, dur_us=(5, 40))
        if round_no % 3 == 1:
            self.syscall(p, "pselect6", ("0", "NULL", "NULL", "NULL", "{tv_sec=1, tv_nsec=0}", "NULL"),
                         (0, 0, 0, 0, 0x7FFD_3A1C_2D00, 0), 0, errno=4, dur_us=(400, 900))
            self.life(EventKind.SIGNAL, p, "SIGUSR1", fields={"signal": "SIGUSR1", "si_code": "SI_USER", "si_pid": 1},
                      text="--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=1, si_uid=0} ---")
            self.syscall(p, "rt_sigreturn", ("{mask=[]}",), (0,), 0)

    def shutdown(self) -> None:
        p = ROOT_PID
        self.syscall(p, "write", ("1", '"demo: done\\n"', "11"), (1, 0x5555_5556_A800, 11), 11)
        self.syscall(p, "exit_group", ("0",), (0,), 0)
        self.life(EventKind.EXIT, p, "exit", ret=0, text="+++ exited with 0 +++")


def iter_rounds(seed: int = 7) -> Iterator[list[Event]]:
    """Endless worker rounds after the program's startup; each yield is one round's events."""
    rec = _Recorder(seed)
    rec.startup()
    round_no = 0
    child = ROOT_PID + 1
    while True:
        rec.worker_round(round_no, child)
        yield rec.events
        rec.events = []
        round_no += 1
        child += 3


def recorded_session(n_events: int = 600, seed: int = 7) -> list[Event]:
    """At least the startup and one round, then rounds until `n_events` (the exact count is returned)."""
    out: list[Event] = []
    for batch in iter_rounds(seed):
        out.extend(batch)
        if len(out) >= n_events:
            break
    rec = _Recorder(seed + 1)
    rec.now = out[-1].ts_ns if out else START_NS
    rec.shutdown()
    return out[:n_events] + rec.events
