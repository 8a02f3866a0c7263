"""Starting the traced command for kernel backends: forked, held before exec until tracing is on.

The child is released by closing a pipe; until then it has done nothing but fork, so its first syscall
after exec is seen. If set-up fails, the child is killed before it ever runs the command.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence

from unitrace.backends.ptrace import sys as px
from unitrace.symbols.elf import find_executable


class HeldChild:
    def __init__(self, argv: Sequence[str]) -> None:
        find_executable(argv[0])  # a clear error for a missing command
        # the file execve gets, as strace and the shell pass it: a name with a slash as given, else the
        # first match on PATH (not resolved further), so the first execve line reads as strace's
        exe = argv[0] if "/" in argv[0] else (shutil.which(argv[0]) or find_executable(argv[0]))
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: only async-signal-safe work until exec
            try:
                os.close(wfd)
                # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: the command would not
                # die of a write to a closed pipe (RELIABILITY #12, as the ptrace backend's child does)
                px.libc_signal(signal.SIGPIPE, px.SIG_DFL)
                px.libc_signal(signal.SIGXFSZ, px.SIG_DFL)
                os.read(rfd, 1)
                os.execv(exe, list(argv))
            finally:
                os._exit(127)
        os.close(rfd)
        self.pid = pid
        # until its exec the child is a copy of us, under our name: a user: probe on libc fires in it
        # (Python calls strlen, malloc... on its way to execve). The ftrace session drops those calls by this
        # name; the bpf program decides in the kernel (program.py: ut_before_exec).
        from unitrace.system.procfs import comm_of

        self.pre_exec_comm = comm_of(os.getpid())
        self._release_fd: int | None = wfd
        self.status: int | None = None

    def release(self) -> None:
        if self._release_fd is not None:
            os.close(self._release_fd)
            self._release_fd = None

    @property
    def released(self) -> bool:
        return self._release_fd is None

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status

    def wait(self) -> int:
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        return self.status

    def abort(self) -> None:
        """Set-up failed: the command must not run untraced."""
        if self.status is None and not self.released:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()
        self.release()

    def exit_code(self) -> int:
        status = self.wait()
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        return 128 + os.WTERMSIG(status)
