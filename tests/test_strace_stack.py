"""`unitrace strace -k` against the installed `strace -k`, on a small C program: the same stacks (module and
module-relative address of every frame, in order) after every syscall and signal line, and the same names.

Names differ in one documented way: strace 6.1 (libdw) names a frame from the module's .dynsym when no
.symtab is loaded, so a static function in libc gets the nearest exported symbol before it
(`__libc_init_first+0x8a` for what is `__libc_start_call_main+0x7a`); unitrace names it from the separate
debug file's .symtab when installed. Such a frame must still be the same address, and strace's name must
provably not contain it (its offset lies past the symbol's size), else the names must agree (up to aliases:
two names of one address, `open64`/`__open64`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.strace_support import UNITRACE, run_tracer

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")

PROG_C = r"""
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) int leaf(const char *p)
{
	int fd = open(p, O_RDONLY);
	if (fd >= 0)
		close(fd);
	return fd;
}
__attribute__((noinline)) int middle(const char *p) { int r = leaf(p); getppid(); return r + 1; }
static void on_usr1(int sig) { (void)sig; getppid(); }
__attribute__((noinline)) void signalled(void) { kill(getpid(), SIGUSR1); }
int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	middle("/etc/hostname");
	middle("/nonexistent");
	signalled();
	return 0;
}
"""

_FRAME = re.compile(r"^ > (?P<mark>\? )?(?P<module>[^(]*)\((?:(?P<sym>.+)\+0x(?P<off>[0-9a-f]+))?\) \[0x(?P<rel>[0-9a-f]+)\]$")


def blocks(text: str) -> list[tuple[str, list[dict[str, str]]]]:
    """(head of the line a stack follows: syscall name or `--- SIGNAL`, its frames)."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    for line in text.splitlines():
        if line.startswith(" > "):
            m = _FRAME.match(line)
            assert m, line
            out[-1][1].append(m.groupdict())
        elif line.startswith("---"):
            out.append((" ".join(line.split()[:2]), []))
        elif line.startswith("+++"):
            out.append((line.split()[1], []))  # exit_group's stack follows `+++ exited` in strace
        else:
            out.append((line.split("(")[0], []))
    return out


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("strace-stack")
    (d / "kprog.c").write_text(PROG_C)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(d / "kprog"), str(d / "kprog.c")], check=True)
    return d / "kprog"


def _symbol_contains(module: str, name: str, off: int) -> bool:
    """Does symbol `name` of `module` (its binary or its debug file) span `off` bytes?"""
    from unitrace.symbols.debuginfo import debug_file
    from unitrace.symbols.elf import elf_symbols

    for path in dict.fromkeys((module, debug_file(module))):
        sym = elf_symbols(path).lookup(name)
        if sym is not None and sym.size:
            return off < sym.size
    return True  # unknown size: cannot prove it wrong


@pytest.mark.parametrize("flags", [[], ["-f"]], ids=["syscall-stops", "seccomp-stops"])
def test_stacks_equal_strace_k(prog: Path, tmp_path: Path, flags: list[str]) -> None:
    trace = ["-k", *flags, "-e", "trace=execve,openat,close,getppid,kill,rt_sigreturn,exit_group"]
    texts = {}
    for who, tracer in (("strace", ["strace"]), ("unitrace", UNITRACE)):
        proc, text = run_tracer(tracer, trace, [str(prog)], tmp_path / who)
        assert proc.returncode == 0, proc.stderr
        texts[who] = re.sub(r"(?m)^\d+ +", "", text)  # -f -o FILE: pid prefixes
    theirs, ours = blocks(texts["strace"]), blocks(texts["unitrace"])
    assert [h for h, _ in ours] == [h for h, _ in theirs]
    compared = in_program = 0
    for (head, t_frames), (_, o_frames) in zip(theirs, ours, strict=True):
        assert [(f["module"], f["rel"]) for f in o_frames] == [(f["module"], f["rel"]) for f in t_frames], head
        for t, o in zip(t_frames, o_frames, strict=True):
            assert o["mark"] is None  # every frame here is proven (CFI)
            compared += 1
            if t["module"] == str(prog):
                in_program += 1
                assert o["sym"] == t["sym"] and o["off"] == t["off"], (head, t, o)
                continue
            if o["sym"] == t["sym"]:
                assert o["off"] == t["off"]
            elif o["sym"] is not None and int(o["off"], 16) == int(t["off"], 16):
                pass  # two names of one address (open64, __open64)
            else:
                # strace's nearest exported symbol, which does not span the address
                assert not _symbol_contains(t["module"], t["sym"], int(t["off"], 16)), (head, t, o)
    assert compared > 40 and in_program >= 8
    # the program's own frames, named, in the caller order of the source
    ours_text = texts["unitrace"]
    assert re.search(r"openat\(AT_FDCWD, \"/etc/hostname\".*\n > .*libc\.so\.6\(\w+\+0x[0-9a-f]+\) \[0x[0-9a-f]+\]\n"
                     rf" > {re.escape(str(prog))}\(leaf\+0x[0-9a-f]+\) .*\n > {re.escape(str(prog))}\(middle\+", ours_text)
    # through the signal trampoline: getppid in the handler, then __restore_rt, then kill in signalled()
    assert re.search(r"\(__restore_rt\+0x0\) .*\n > .*\(kill\+0x[0-9a-f]+\) .*\n > .*\((signalled|main)\+", ours_text)


def test_k_with_c_is_a_warning(prog: Path, tmp_path: Path) -> None:
    proc = subprocess.run([*UNITRACE, "-c", "-k", str(prog)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "strace: -k/--stack-traces has no effect with -c/--summary-only" in proc.stderr
    assert " > " not in proc.stderr
