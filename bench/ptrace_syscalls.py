"""What tracing costs: `unitrace strace` next to strace on the same workloads, same flags.

Workloads: a 200k-getppid loop (C), 50k open/fstat/close (C), `tar c /usr/include > /dev/null`, 300
fork+exec of /bin/true, python start-up. Variants: untraced; `strace -f -o /dev/null`; `strace -f
--seccomp-bpf -e trace=openat -o /dev/null`; `unitrace strace -f -o /dev/null`; the same filtered; and
`-c` for both. Each variant's command runs in alternation with the others (bench/harness.py), so machine
noise hits all of them alike. Printed: median wall time, ratio to untraced, and microseconds added per
syscall (the workload's syscall count is measured once with `strace -f -c`). No thresholds: read the
ratios.

    python bench/ptrace_syscalls.py [RUNS] [WORKLOAD ...]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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
    "open_fstat_close": r"""
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    struct stat st;
    for (int i = 0; i < 50000; i++) {
        int fd = open("/etc/hostname", O_RDONLY);
        fstat(fd, &st);
        close(fd);
    }
    return 0;
}
""",
    "fork_exec_300": r"""
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 300; i++) {
        pid_t p = fork();
        if (p == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
        int st; waitpid(p, &st, 0);
    }
    return 0;
}
""",
}


def build() -> dict[str, list[str]]:
    BUILD.mkdir(exist_ok=True)
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("gcc is needed to build the benchmark workloads")
    out: dict[str, list[str]] = {}
    for name, src in C_SOURCES.items():
        c = BUILD / f"{name}.c"
        exe = BUILD / name
        current = c.read_text() if c.exists() else ""
        if not exe.exists() or current != src:
            c.write_text(src)
            subprocess.run([gcc, "-O2", "-o", str(exe), str(c)], check=True)
        out[name] = [str(exe)]
    out["tar_usr_include"] = ["sh", "-c", "tar cf - /usr/include 2>/dev/null > /dev/null"]
    out["python_startup"] = [sys.executable, "-c", "pass"]
    return out


def syscall_count(argv: list[str]) -> int:
    """Total syscalls the workload makes (strace -f -c's total line)."""
    proc = subprocess.run(["strace", "-f", "-c", "-o", "/dev/stdout", *argv], capture_output=True, text=True)
    m = re.search(r"^100\.00\s+\S+\s+\S+\s+(\d+)(?:\s+\d+)?\s+total$", proc.stdout, re.M)
    return int(m.group(1)) if m else 0


def variants(argv: list[str]) -> dict[str, list[str]]:
    ut = [sys.executable, "-m", "unitrace", "strace"]
    return {
        "untraced": argv,
        "strace -f": ["strace", "-f", "-o", "/dev/null", *argv],
        "unitrace -f": [*ut, "-f", "-o", "/dev/null", *argv],
        "strace -f --seccomp-bpf -e openat": ["strace", "-f", "--seccomp-bpf", "-e", "trace=openat", "-o",
                                               "/dev/null", *argv],
        "unitrace -f -e openat": [*ut, "-f", "-e", "trace=openat", "-o", "/dev/null", *argv],
        "strace -f -c": ["strace", "-f", "-c", "-o", "/dev/null", *argv],
        "unitrace -f -c": [*ut, "-f", "-c", "-o", "/dev/null", *argv],
    }


def main() -> None:
    from bench.harness import compare, report

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wanted = sys.argv[2:]
    workloads = build()
    print(f"strace: {subprocess.run(['strace', '-V'], capture_output=True, text=True).stdout.splitlines()[0]}")
    print(f"kernel: {os.uname().release}, cpus: {os.cpu_count()}, runs per variant: {runs}")
    for name, argv in workloads.items():
        if wanted and name not in wanted:
            continue
        count = syscall_count(argv)
        print(f"\n== {name}: {count} syscalls ==")
        result = compare(name, variants(argv), runs=runs, events=count)
        report([result], baseline="untraced")


if __name__ == "__main__":
    main()
