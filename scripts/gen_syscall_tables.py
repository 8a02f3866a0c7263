#!/usr/bin/env python3
"""Generate unitrace/decode/tables/{x86_64,aarch64}.json, the syscall tables the decoders run on.

Sources (all on a Debian 12 machine with linux-headers and strace installed):
- numbers, x86_64: /usr/include/x86_64-linux-gnu/asm/unistd_64.h (linux-libc-dev);
- numbers, aarch64: /usr/include/asm-generic/unistd.h preprocessed with gcc as arm64's
  arch/arm64/include/uapi/asm/unistd.h does (its __ARCH_WANT_* set, __BITS_PER_LONG=64);
- parameter names and C types: the kernel's include/linux/syscalls.h (linux-headers-*-common), which
  keeps the `__user` annotations, completed by tracefs events/syscalls/sys_enter_*/format of the
  running kernel for arch-specific calls (mmap, arch_prctl, ...) and unnamed parameters (clone);
- strace's syscall classes (%file, %desc, %net, ... as documented in strace(1), section "-e trace"):
  measured from the installed strace itself. A tiny static program calls every syscall number once
  with zero arguments while strace injects ENOSYS into all of them (nothing really runs) and, for
  one class at a time, a marker return value into that class; the calls that return the marker are
  the class's members. This records strace's own classification instead of retyping it.

Usage: python3 scripts/gen_syscall_tables.py [--out unitrace/decode/tables]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UNISTD_64 = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
UNISTD_GENERIC = Path("/usr/include/asm-generic/unistd.h")
ARM64_WANTS = (
    "__ARCH_WANT_RENAMEAT", "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS", "__ARCH_WANT_SYS_CLONE3", "__ARCH_WANT_MEMFD_SECRET",
)
TRACEFS_SYSCALLS = Path("/sys/kernel/tracing/events/syscalls")

# strace(1) documents these class names; "%%stat" and "%%statfs" are keyed without one "%".
STRACE_CLASSES = (
    "file", "process", "net", "signal", "ipc", "desc", "memory", "creds", "stat", "lstat", "fstat",
    "%stat", "statfs", "fstatfs", "%statfs", "clock", "pure",
)
MARKER = 4242

# The kernel names some entry points differently from the syscall (unistd) name.
ENTRY_ALIASES = {
    "umount2": "umount", "sendfile": "sendfile64", "fadvise64": "fadvise64_64",
    "stat": "newstat", "lstat": "newlstat", "fstat": "newfstat", "uname": "newuname",
    "newfstatat": "newfstatat", "fstatat": "newfstatat",
}

# clone's argument order depends on CONFIG_CLONE_BACKWARDS* (kernel/fork.c, arch Kconfig):
# x86_64 uses the plain order, arm64 selects CLONE_BACKWARDS (tls before child_tidptr).
CLONE_PARAMS = {
    "x86_64": [["clone_flags", "unsigned long"], ["newsp", "unsigned long"],
               ["parent_tidptr", "int __user *"], ["child_tidptr", "int __user *"],
               ["tls", "unsigned long"]],
    "aarch64": [["clone_flags", "unsigned long"], ["newsp", "unsigned long"],
                ["parent_tidptr", "int __user *"], ["tls", "unsigned long"],
                ["child_tidptr", "int __user *"]],
}


def find_syscalls_h() -> Path:
    for d in sorted(Path("/usr/src").glob("linux-headers-*-common"), reverse=True):
        p = d / "include/linux/syscalls.h"
        if p.exists():
            return p
    sys.exit("gen_syscall_tables: no /usr/src/linux-headers-*-common/include/linux/syscalls.h; "
             "install linux-headers-$(uname -r)")


def x86_64_numbers() -> dict[int, str]:
    out: dict[int, str] = {}
    for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", UNISTD_64.read_text(), re.M):
        out[int(m.group(2))] = m.group(1)
    return out


def aarch64_numbers() -> dict[int, str]:
    cmd = ["gcc", "-E", "-dM", "-D__BITS_PER_LONG=64", *(f"-D{w}" for w in ARM64_WANTS),
           "-x", "c", str(UNISTD_GENERIC)]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    macros = dict(re.findall(r"^#define (__NR3?2?6?4?_\w+) (\S+)$", text, re.M))

    def value(tok: str, depth: int = 0) -> int | None:
        if tok.isdigit():
            return int(tok)
        if depth > 8 or tok not in macros:
            return None
        return value(macros[tok], depth + 1)

    out: dict[int, str] = {}
    for name, tok in macros.items():
        if not name.startswith("__NR_") or name in ("__NR_syscalls", "__NR_arch_specific_syscall"):
            continue
        v = value(tok)
        if v is not None:
            out[v] = name[len("__NR_"):]
    return out


def parse_syscalls_h(path: Path) -> dict[str, list[list[str]]]:
    """sys_NAME -> [[param name, C type], ...]; the last declaration wins (variants under #ifdef)."""
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(), flags=re.S)
    decls: dict[str, list[list[str]]] = {}
    for m in re.finditer(r"asmlinkage\s+long\s+sys_(\w+)\s*\(([^;]*?)\)\s*;", text, re.S):
        name, body = m.group(1), " ".join(m.group(2).split())
        params: list[list[str]] = []
        if body and body != "void":
            for i, raw in enumerate(p.strip() for p in body.split(",")):
                pm = re.match(r"^(.*?[\s*])(\w+)$", raw)
                words = raw.replace("*", " ").split()
                # a trailing identifier that is a type word means the parameter is unnamed
                if pm and words[-1] not in {"int", "long", "char", "short", "unsigned", "size_t"} \
                        and len(words) > 1:
                    params.append([pm.group(2), " ".join(pm.group(1).split())])
                else:
                    params.append([f"arg{i}", raw])
        decls[name] = params
    return decls


def parse_tracefs(root: Path) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    if not root.is_dir():
        return out
    for d in root.glob("sys_enter_*"):
        try:
            text = (d / "format").read_text()
        except OSError:
            continue
        params = []
        for m in re.finditer(r"field:([^;]*?)\s*(\w+);\toffset:(\d+);", text):
            ctype, name, off = m.group(1).strip(), m.group(2), int(m.group(3))
            if off >= 16:
                params.append([name, ctype])
        out[d.name[len("sys_enter_"):]] = params
    return out


def params_for(name: str, arch: str, header: dict, tracefs: dict) -> list[list[str]]:
    if name == "clone":
        return CLONE_PARAMS[arch]
    cands = [ENTRY_ALIASES.get(name, name), name, "new" + name]
    h = next((header[c] for c in cands if c in header), None)
    t = next((tracefs[c] for c in cands if c in tracefs), None)
    if h is not None and t is not None and len(h) == len(t):
        # header types keep __user; tracefs names the parameters the header left unnamed
        return [[hn if not hn.startswith("arg") else tn, ht] for (hn, ht), (tn, _) in zip(h, t, strict=True)]
    if h is not None:
        return h
    if t is not None:
        return t
    return []


PROBE_C = r"""
static long raw(long n) {
    long r;
    register long r10 __asm__("r10") = 0, r8 __asm__("r8") = 0, r9 __asm__("r9") = 0;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(0), "S"(0), "d"(0), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}
static const short nrs[] = { NRS };
void _start(void) {
    for (unsigned i = 0; i < sizeof nrs / sizeof nrs[0]; i++) raw(nrs[i]);
    /* exit_group may be injected too (it is in %process): leave by a fault, which needs no syscall */
    *(volatile int *)0 = 0;
}
"""


def strace_classes(numbers: dict[int, str]) -> tuple[dict[str, list[str]], str]:
    """Class name -> syscall names, measured from the installed strace (x86_64 only)."""
    strace = shutil.which("strace")
    if strace is None:
        sys.exit("gen_syscall_tables: strace is needed to record its syscall classes")
    version = subprocess.run([strace, "-V"], capture_output=True, text=True).stdout.splitlines()[0]
    skip = {"exit", "exit_group"}
    nrs = ",".join(str(n) for n, name in sorted(numbers.items()) if name not in skip)
    classes: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="unitrace-gen-") as tmp:
        src, exe = Path(tmp, "probe.c"), Path(tmp, "probe")
        src.write_text(PROBE_C.replace("NRS", nrs))
        subprocess.run(["gcc", "-O1", "-nostdlib", "-static", "-o", str(exe), str(src)], check=True)
        for cls in STRACE_CLASSES:
            res = subprocess.run(
                [strace, "-qq", "-e", "trace=all", "-e", "inject=!exit_group:error=ENOSYS",
                 "-e", f"inject=%{cls}:retval={MARKER}", str(exe)],
                capture_output=True, text=True, check=False)
            names = set()
            for line in res.stderr.splitlines():
                m = re.match(rf"^(\w+)\(.*= (?:{MARKER}|{MARKER:#x}) \(INJECTED\)$", line)
                if m:
                    names.add(m.group(1))
            # exit/exit_group are never called by the probe; strace(1) lists them under %process
            if cls == "process":
                names |= {"exit", "exit_group"}
            classes[cls] = sorted(names)
    return classes, version


def build(arch: str, numbers: dict[int, str], header: dict, tracefs: dict,
          classes: dict[str, list[str]]) -> list:
    member: dict[str, list[str]] = {}
    for cls, names in classes.items():
        for n in names:
            member.setdefault(n, []).append(cls)
    return [[nr, name, params_for(name, arch, header, tracefs), sorted(member.get(name, []))]
            for nr, name in sorted(numbers.items())]


ERRNO_HEADERS = (Path("/usr/include/asm-generic/errno-base.h"), Path("/usr/include/asm-generic/errno.h"))


def errno_names(syscalls_h: Path) -> list[list]:
    """[[number, name, kernel comment]]; the first name defined for a number wins, as in strace
    (EAGAIN over EWOULDBLOCK, EDEADLK over EDEADLOCK), since aliases are defined by name not number."""
    kernel_internal = syscalls_h.parent / "errno.h"  # include/linux/errno.h: ERESTARTSYS and friends
    rows: dict[int, list] = {}
    for path in (*ERRNO_HEADERS, kernel_internal):
        for m in re.finditer(r"^#define\s+(E\w+)\s+(\d+)\s*(?:/\*\s*(.*?)\s*\*/)?", path.read_text(), re.M):
            rows.setdefault(int(m.group(2)), [int(m.group(2)), m.group(1), m.group(3) or ""])
    return [rows[k] for k in sorted(rows)]


def render(doc: dict, key: str = "syscalls") -> str:
    """JSON with one row per line, so diffs of regenerated tables stay readable."""
    rows = doc.pop(key)
    head = json.dumps(doc, indent=1)[:-2]
    body = ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows)
    return f'{head},\n "{key}": [\n{body}\n]}}\n'


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "unitrace/decode/tables"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    syscalls_h = find_syscalls_h()
    header = parse_syscalls_h(syscalls_h)
    tracefs = parse_tracefs(TRACEFS_SYSCALLS)
    x86 = x86_64_numbers()
    classes, strace_version = strace_classes(x86)
    arm = aarch64_numbers()
    command = "python3 scripts/gen_syscall_tables.py"
    for arch, numbers, numsrc in (("x86_64", x86, str(UNISTD_64)),
                                  ("aarch64", arm, f"{UNISTD_GENERIC} with {' '.join(ARM64_WANTS)}")):
        doc = {
            "generated_by": command,
            "sources": {
                "numbers": numsrc,
                "params": f"{syscalls_h}; {TRACEFS_SYSCALLS}/sys_enter_*/format (kernel {os.uname().release})",
                "classes": f"measured from {strace_version} (classes documented in strace(1) -e trace=%CLASS)"
                           + ("" if arch == "x86_64" else "; applied to aarch64 by syscall name"),
            },
            "arch": arch,
            "classes": sorted(classes),
            "syscalls": build(arch, numbers, header, tracefs, classes),
        }
        path = out / f"{arch}.json"
        path.write_text(render(doc))
        print(f"wrote {path}: {len(numbers)} syscalls")
    errnos = {"generated_by": command,
              "sources": [str(p) for p in (*ERRNO_HEADERS, syscalls_h.parent / "errno.h")],
              "errnos": errno_names(syscalls_h)}
    (out / "errnos.json").write_text(render(errnos, "errnos"))
    print(f"wrote {out / 'errnos.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
