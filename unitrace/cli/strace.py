"""`unitrace strace [FLAGS] CMD...` / `-p PID`: strace's everyday flags, with strace's meaning.

Flags are parsed here, by hand, the way strace's getopt does it (clustered short options such as `-ff`,
`-tt`, `-xx`; an argument glued on, `-s100`, or separate, `-s 100`; option parsing stops at the command),
because argparse cannot express counted flags or strace's `-e` qualifiers. Everything after the options is
the command, as strace takes it; `--` works too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from unitrace.errors import EXIT_USAGE, UnitraceError

ACCEPTS_EXTRA = True

# Short options that take an argument (strace 6.1's optstring, minus the ones we reject outright).
_SHORT_WITH_ARG = set("abeEIoOpPsSuUX")
_SHORT_FLAGS = set("cCdDfFhiknqrtTvVwxyzZA")

# long option -> (short equivalent or our own key, takes an argument: "required" | "optional" | "no")
_LONG: dict[str, tuple[str, str]] = {
    "output": ("o", "required"), "follow-forks": ("f", "no"), "output-separately": ("ff", "no"),
    "summary-only": ("c", "no"), "summary": ("C", "no"), "summary-sort-by": ("S", "required"),
    "summary-wall-clock": ("w", "no"), "string-limit": ("s", "required"), "no-abbrev": ("v", "no"),
    "successful-only": ("z", "no"), "failed-only": ("Z", "no"), "attach": ("p", "required"),
    "trace-path": ("P", "required"), "const-print-style": ("X", "required"),
    "relative-timestamps": ("r", "no"), "syscall-times": ("T", "no"), "stack-traces": ("k", "no"),
    "quiet": ("q", "no"), "help": ("h", "no"), "version": ("V", "no"), "columns": ("a", "required"),
    "trace": ("trace", "required"), "signal": ("signal", "required"), "status": ("status", "required"),
    "decode-fds": ("decode-fds", "optional"), "absolute-timestamps": ("t", "no"),
    "kill-on-exit": ("kill-on-exit", "no"), "seccomp-bpf": ("seccomp-bpf", "no"),
    "no-seccomp-bpf": ("no-seccomp-bpf", "no"), "backend": ("backend", "required"),
    "fd-leaks": ("fd-leaks", "no"),
}

_SORT_KEYS = {
    "time": "time", "time_total": "time", "total_time": "time", "calls": "calls", "count": "calls",
    "errors": "errors", "error": "errors", "name": "name", "syscall": "name", "syscall_name": "name",
    "nothing": "nothing", "none": "nothing",
}
_BACKENDS = ("ptrace", "bpf", "ftrace", "auto")

USAGE = """\
usage: unitrace strace [-fqrtTvwxyzZcC] [-o FILE] [-p PID]... [-e EXPR]... [-s N] [-S SORTBY]
                       [-P PATH]... [-X raw|abbrev|verbose] [--fd-leaks] [--backend B] [CMD [ARG]...]

strace's everyday flags with strace's meaning:
  -f / -ff          follow forks and threads; -ff with -o writes FILE.PID per thread
  -o FILE           write the trace to FILE (default: stderr)
  -p PID            attach to a running process (repeatable)
  -e trace=SET      names, /regex, %file %net %process %memory %signal %desc %ipc %creds %clock
                    %stat %lstat %fstat %%stat %statfs %fstatfs %%statfs; `!` negates, `?` tolerates
  -e signal=SET     which signals to show;  -e status=successful,failed,unfinished,unavailable,detached
  -z / -Z           only successful / only failed calls
  -s N -v -x -xx -y -yy -X raw|abbrev|verbose     argument formatting
  -t -tt -ttt -r -T timestamps and durations
  -c -C -S KEY -w   summary table (time|calls|errors|name|nothing), -w: wall-clock latency
  -P PATH           only syscalls that touch PATH
  -q -qq            fewer notices
  --kill-on-exit    kill the tracees when unitrace exits
  --seccomp-bpf / --no-seccomp-bpf   stop only at traced syscalls (default: on when filtering)
  --fd-leaks        report descriptors each exec'd program inherits without O_CLOEXEC
  --backend ptrace|bpf|ftrace|auto   (ptrace; bpf prints the syscall lines too, see docs/strace.md)
  -k                the user stack after each syscall line (DWARF CFI; `?` marks guessed frames)
"""


@dataclass
class StraceConfig:
    follow: int = 0
    output: str | None = None
    pids: list[int] = field(default_factory=list)
    trace_exprs: list[str] = field(default_factory=list)
    signal_exprs: list[str] = field(default_factory=list)
    status: frozenset[str] | None = None
    string_limit: int = 32
    verbose: bool = False
    hex_strings: int = 0
    decode_fds: int = 0
    timestamps: int = 0
    relative: bool = False
    syscall_times: bool = False
    count: str = ""  # "", "c" (summary only), "C" (lines and summary)
    sort_by: str = "time"
    wall_clock: bool = False
    paths: list[str] = field(default_factory=list)
    xlat: str = "abbrev"
    stack: bool = False
    quiet: int = 0
    column: int = 40
    kill_on_exit: bool = False
    seccomp: bool | None = None  # None: on when filtering
    backend: str = "auto"
    fd_leaks: bool = False
    help: bool = False
    version: bool = False
    command: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _int_arg(flag: str, value: str, minimum: int = 0) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        n = -1
    if n < minimum:
        raise UnitraceError(f"invalid -{flag} argument: {value!r}", hint="unitrace strace -h")
    return n


_STATUS_NAMES = frozenset({"successful", "failed", "unfinished", "unavailable", "detached"})


def _parse_status(value: str) -> frozenset[str]:
    negate = value.startswith("!")
    items = [s for s in value.lstrip("!").split(",") if s]
    chosen: set[str] = set()
    for item in items:
        if item == "all":
            chosen |= _STATUS_NAMES
        elif item == "none":
            continue
        elif item in _STATUS_NAMES:
            chosen.add(item)
        else:
            raise UnitraceError(f"invalid status {item!r}",
                                hint="one of: successful, failed, unfinished, unavailable, detached")
    return frozenset(_STATUS_NAMES - chosen) if negate else frozenset(chosen)


def _apply_e(cfg: StraceConfig, value: str) -> None:
    """One `-e` qualifier: `trace=SET` (or a bare SET), `signal=SET`, `status=SET`, `decode-fds=...`."""
    key, eq, rest = value.partition("=")
    if not eq:
        key, rest = "trace", value
    key = key.strip()
    if key in ("trace", "t"):
        cfg.trace_exprs.append(rest)
    elif key in ("signal", "signals", "s"):
        cfg.signal_exprs.append(rest)
    elif key == "status":
        cfg.status = _parse_status(rest)
    elif key == "decode-fds":
        cfg.decode_fds = max(cfg.decode_fds, 2 if any(x in rest for x in ("socket", "dev", "all")) else 1)
    elif key in ("abbrev", "verbose", "raw", "read", "write", "fault", "inject", "quiet", "kvm",
                 "decode-pids", "trace-fds", "secontext"):
        raise UnitraceError(f"-e {key}= is not supported by unitrace strace yet",
                            hint="supported qualifiers: trace=, signal=, status=, decode-fds=")
    else:
        raise UnitraceError(f"invalid -e qualifier {key!r} in {value!r}",
                            hint="supported qualifiers: trace=, signal=, status=, decode-fds=")


def _apply(cfg: StraceConfig, opt: str, value: str | None) -> None:
    """Apply one option; `opt` is a short letter or one of our long-only keys."""
    match opt:
        case "f" | "F":
            cfg.follow += 1
        case "ff":
            cfg.follow = 2
        case "o":
            assert value is not None
            if value.startswith(("|", "!")):
                raise UnitraceError(f"-o {value!r}: piping the trace into a command is not supported",
                                    hint="write to a file, or to stderr and pipe that: 2>&1 | CMD")
            cfg.output = value
        case "p":
            assert value is not None
            for item in re.split(r"[,\s]+", value.strip()):
                if item:
                    cfg.pids.append(_int_arg("p", item, 1))
        case "e":
            assert value is not None
            _apply_e(cfg, value)
        case "trace" | "signal" | "status":
            assert value is not None
            _apply_e(cfg, f"{opt}={value}")
        case "z":
            cfg.status = frozenset({"successful"})
        case "Z":
            cfg.status = frozenset({"failed"})
        case "s":
            assert value is not None
            cfg.string_limit = _int_arg("s", value)
        case "v":
            cfg.verbose = True
        case "x":
            cfg.hex_strings = min(2, cfg.hex_strings + 1)
        case "y":
            cfg.decode_fds = min(2, cfg.decode_fds + 1)
        case "decode-fds":
            cfg.decode_fds = max(cfg.decode_fds, 2 if value and value != "path" else 1)
        case "t":
            cfg.timestamps = min(3, cfg.timestamps + 1)
        case "r":
            cfg.relative = True
        case "T":
            cfg.syscall_times = True
        case "c":
            cfg.count = "c"
        case "C":
            cfg.count = "C"
        case "S":
            assert value is not None
            key = _SORT_KEYS.get(value)
            if key is None:
                raise UnitraceError(f"invalid sortby: {value!r}", hint="one of: time, calls, errors, name, nothing")
            cfg.sort_by = key
        case "w":
            cfg.wall_clock = True
        case "P":
            assert value is not None
            cfg.paths.append(value)
        case "X":
            if value not in ("raw", "abbrev", "verbose"):
                raise UnitraceError(f"invalid -X argument: {value!r}", hint="one of: raw, abbrev, verbose")
            cfg.xlat = value
        case "k":
            cfg.stack = True
        case "q":
            cfg.quiet += 1
        case "a":
            assert value is not None
            cfg.column = _int_arg("a", value)
        case "h":
            cfg.help = True
        case "V":
            cfg.version = True
        case "kill-on-exit":
            cfg.kill_on_exit = True
        case "seccomp-bpf":
            cfg.seccomp = True
        case "no-seccomp-bpf":
            cfg.seccomp = False
        case "backend":
            if value not in _BACKENDS:
                raise UnitraceError(f"unknown backend {value!r}", hint=f"one of: {', '.join(_BACKENDS)}")
            cfg.backend = value
        case "fd-leaks":
            cfg.fd_leaks = True
        case "d" | "I" | "A":
            pass  # debug output, interruptibility, append to -o: accepted, nothing to do for us
        case _:
            raise UnitraceError(f"option -{opt} is not supported by unitrace strace yet",
                                hint="unitrace strace -h lists what is")


def parse_argv(argv: list[str]) -> StraceConfig:
    """strace's command line -> StraceConfig. Stops at the first non-option, as strace does."""
    cfg = StraceConfig()
    i = 0
    zflags: list[str] = []
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            spec = _LONG.get(name)
            if spec is None:
                raise UnitraceError(f"unrecognized option {arg!r}", hint="unitrace strace -h")
            opt, wants = spec
            if wants == "no" and eq:
                raise UnitraceError(f"option '--{name}' doesn't allow an argument")
            if wants == "required" and not eq:
                i += 1
                if i >= len(argv):
                    raise UnitraceError(f"option '--{name}' requires an argument")
                value = argv[i]
            if opt in ("z", "Z"):
                zflags.append(opt)
            _apply(cfg, opt, value if (eq or wants == "required") else None)
            i += 1
            continue
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter in _SHORT_WITH_ARG:
                value = arg[j + 1:]
                if not value:
                    i += 1
                    if i >= len(argv):
                        raise UnitraceError(f"option requires an argument -- '{letter}'",
                                            hint="unitrace strace -h")
                    value = argv[i]
                if letter in "bEuUOi":
                    raise UnitraceError(f"option -{letter} is not supported by unitrace strace yet",
                                        hint="unitrace strace -h lists what is")
                _apply(cfg, letter, value)
                break
            if letter not in _SHORT_FLAGS:
                raise UnitraceError(f"invalid option -- '{letter}'", hint="unitrace strace -h")
            if letter in ("D", "i", "n"):
                raise UnitraceError(f"option -{letter} is not supported by unitrace strace yet",
                                    hint="unitrace strace -h lists what is")
            if letter in "zZ":
                zflags.append(letter)
            _apply(cfg, letter, None)
            j += 1
        i += 1
    cfg.command = argv[i:]
    if cfg.stack and cfg.count == "c":
        cfg.warnings.append("-k/--stack-traces has no effect with -c/--summary-only")
        cfg.stack = False
    if len(set(zflags)) > 1:
        cfg.warnings.append("Only the last of -z/--successful-only/-Z/--failed-only options will take "
                            "effect. See status qualifier for more complex filters.")
    return cfg


def validate(cfg: StraceConfig) -> None:
    if not cfg.command and not cfg.pids:
        raise UnitraceError("must have PROG [ARGS] or -p PID", hint="unitrace strace -h")
    if cfg.command and cfg.pids:
        # strace allows both; one session traces one kind of target here
        raise UnitraceError("give either a command or -p PID, not both")
    if cfg.follow >= 2 and not cfg.output:
        cfg.follow = 1  # strace: -ff without -o is -f
    if cfg.count == "c" and cfg.fd_leaks:
        pass
    for pid in cfg.pids:
        if not os.path.exists(f"/proc/{pid}"):
            from unitrace.errors import TargetError

            raise TargetError(f"attach: no process with PID {pid}")


# ---- -e trace= / -e signal= sets -------------------------------------------------------------------

_CLASS_ALIASES = {"network": "net", "%network": "net"}
_LEGACY_CLASSES = ("file", "process", "network", "signal", "ipc", "desc", "memory")


def _class_members(item: str, classes: dict[str, frozenset[str]]) -> frozenset[str] | None:
    key = item[1:]  # "%file" -> "file"; "%%stat" -> "%stat", as the decode tables name it
    return classes.get(_CLASS_ALIASES.get(key, key))


def resolve_trace_set(exprs: Iterable[str], all_names: Iterable[str],
                      classes: dict[str, frozenset[str]]) -> frozenset[str] | None:
    """The syscall names `-e trace=` selects; None for "all". Several -e trace= add up, as in strace."""
    names = sorted(all_names)
    known = set(names)
    result: set[str] | None = None
    for expr in exprs:
        negate = expr.startswith("!")
        body = expr[1:] if negate else expr
        chosen: set[str] = set()
        everything = False
        for raw in body.split(","):
            item = raw.strip()
            if not item:
                continue
            optional = item.startswith("?")
            item = item.lstrip("?")
            if item == "all":
                everything = True
                continue
            if item == "none":
                continue
            matched: Iterable[str]
            if item.startswith("/"):
                try:
                    rx = re.compile(item[1:])
                except re.error as exc:
                    raise UnitraceError(f"invalid regular expression {item!r}: {exc}") from exc
                matched = [n for n in names if rx.search(n)]
            elif item.startswith("%"):
                members = _class_members(item, classes)
                if members is None:
                    if optional:
                        continue
                    raise UnitraceError(f"invalid system call {item!r}",
                                        hint=f"classes: {', '.join('%' + c for c in sorted(classes))}")
                matched = members
            elif item in known:
                matched = [item]
            elif item in _LEGACY_CLASSES:
                matched = classes.get(_CLASS_ALIASES.get(item, item), frozenset())
            else:
                matched = []
            if not matched and not optional:
                import difflib

                close = difflib.get_close_matches(item, names, n=3)
                raise UnitraceError(f"invalid system call {item!r}",
                                    hint=f"did you mean {', '.join(close)}?" if close else None)
            chosen.update(matched)
        if everything:
            chosen = set(known)
        if negate:
            chosen = known - chosen
        result = chosen if result is None else result | chosen
    return None if result is None or result == known else frozenset(result)


def resolve_signal_set(exprs: Iterable[str], by_name: dict[str, int]) -> frozenset[str] | None:
    """The signal names `-e signal=` shows; None for all."""
    every = frozenset(by_name)
    result: frozenset[str] | None = None
    for expr in exprs:
        negate = expr.startswith("!")
        chosen: set[str] = set()
        for raw in expr.lstrip("!").split(","):
            item = raw.strip().upper()
            if not item:
                continue
            if item == "ALL":
                chosen |= every
                continue
            if item == "NONE":
                continue
            if item.isdigit():
                num = int(item)
                names = [n for n, v in by_name.items() if v == num]
                if not names:
                    raise UnitraceError(f"invalid signal {raw!r}")
                chosen.update(names)
                continue
            name = item if item.startswith("SIG") else f"SIG{item}"
            if name not in by_name:
                raise UnitraceError(f"invalid signal {raw!r}")
            chosen.add(name)
        result = frozenset(every - chosen) if negate else frozenset(chosen)
    return result


# ---- running ---------------------------------------------------------------------------------------


def register(p: argparse.ArgumentParser) -> None:
    # Every flag is ours to parse (see parse_argv); argparse only routes them here, in order. Its own -h
    # must go, or `unitrace strace grep -h x` would print our help instead of tracing grep.
    for action in list(p._actions):
        if "-h" in action.option_strings:
            p._handle_conflict_resolve(action, [(s, action) for s in action.option_strings])
    p.usage = "unitrace strace [FLAGS] CMD [ARG]... | -p PID  (unitrace strace -h for the flags)"


def run(args: argparse.Namespace) -> int:
    argv = list(getattr(args, "extra", []) or [])
    cfg = parse_argv(argv)
    if cfg.help:
        sys.stdout.write(USAGE)
        return 0
    if cfg.version:
        from unitrace import __version__

        sys.stdout.write(f"unitrace strace {__version__} (strace 6.1 compatible flags)\n")
        return 0
    for warning in cfg.warnings:
        sys.stderr.write(f"strace: {warning}\n")
    validate(cfg)
    return run_strace(cfg)


# ---- the session ----------------------------------------------------------------------------------

_FD_PARAM = re.compile(r"(^|_)fd(_|$)|^fd|fd$")


class EventFilter:
    """What strace decides in user space: which syscalls (-e trace= when the backend could not stop only
    at those), which signals (-e signal=), which paths (-P)."""

    def __init__(self, names: frozenset[str] | None, signals: frozenset[str] | None, paths: list[str],
                 fd_params: dict[str, tuple[int, ...]]) -> None:
        from unitrace.fdleaks import FdTracker

        self.names = names
        self.signals = signals
        self.paths = {p for path in paths for p in (path, os.path.realpath(path))}
        self.fd_params = fd_params
        self.tracker = FdTracker() if paths else None
        self._entry_kept: dict[int, bool] = {}
        self.filtered = 0

    def _touches_path(self, ev: object) -> bool:
        from unitrace.fdleaks import leading_int, unquote

        assert self.tracker is not None
        args = ev.args  # type: ignore[attr-defined]
        for text in args:
            if text.startswith('"') and unquote(text) in self.paths:
                return True
            if "<" in text and text.endswith(">") and text[text.index("<") + 1:-1] in self.paths:
                return True  # -y already resolved an fd to its path
        for index in self.fd_params.get(ev.name, ()):  # type: ignore[attr-defined]
            if index < len(args):
                fd = leading_int(args[index])
                if fd is not None and self.tracker.path_of(ev.pid, fd) in self.paths:  # type: ignore[attr-defined]
                    return True
        return False

    def __call__(self, batch: list) -> list:
        from unitrace.events import EventKind

        syscall_kinds = (EventKind.SYSCALL, EventKind.SYSCALL_ENTER, EventKind.SYSCALL_RESUMED)
        out = []
        names, signals = self.names, self.signals
        for ev in batch:
            kind = ev.kind
            if kind in syscall_kinds:
                if names is not None and ev.name not in names:
                    self.filtered += 1
                    continue
                if self.tracker is not None:
                    # paths and descriptors are entry arguments: the entry decides, its exit follows it
                    if kind is EventKind.SYSCALL_ENTER:
                        keep = self._entry_kept[ev.tid] = self._touches_path(ev)
                    else:
                        entry = self._entry_kept.pop(ev.tid, None)
                        keep = entry if entry is not None else self._touches_path(ev)
                    if not keep:
                        self.filtered += 1
                        continue
            elif kind is EventKind.SIGNAL and signals is not None and ev.name not in signals:
                continue
            out.append(ev)
        if self.tracker is not None:
            self.tracker.feed(batch)  # after judging: a close() of the path is still shown
        return out


def _format_options(cfg: StraceConfig) -> object:
    from unitrace.decode.api import FormatOptions

    counting_only = cfg.count == "c" and not cfg.paths and not cfg.fd_leaks
    return FormatOptions(string_limit=cfg.string_limit, hex_strings=cfg.hex_strings, verbose=cfg.verbose,
                         decode_fds=cfg.decode_fds, xlat=cfg.xlat, decode=not counting_only)


def _check_backend(cfg: StraceConfig, probes: tuple) -> str:
    """strace's semantics (every argument decoded at the stop, output as it happens) are the ptrace
    backend's; bpf prints the same syscall lines from what it copied in the kernel (docs/strace.md says
    what differs); other choices get the planner's answer, and ours when the planner would allow them.
    Returns the backend to load."""
    if cfg.backend in ("auto", "ptrace"):
        return "ptrace"
    from unitrace.backends.base import TraceTarget
    from unitrace.errors import PlanError
    from unitrace.model.probe import ProbeProgram
    from unitrace.plan.planner import facts_from_system, plan

    target = TraceTarget(command=tuple(cfg.command), pids=tuple(cfg.pids), follow_forks=cfg.follow > 0)
    # the planner's own refusal (no BPF here, no tracefs...) is the more useful message: it goes first
    try:
        facts = facts_from_system()
    except ImportError:
        facts = None  # capability detection is not part of this build: our own answer still holds
    if facts is not None:
        plan(ProbeProgram(probes=probes), target, facts, cfg.backend)
    if cfg.backend == "bpf":
        if cfg.stack or cfg.paths or cfg.fd_leaks or cfg.count:
            raise PlanError("unitrace strace --backend bpf prints syscall lines only (no -k, -P, -c/-C or "
                            "--fd-leaks yet)", hint="use --backend ptrace for those")
        return "bpf"
    raise PlanError(f"unitrace strace runs on the ptrace backend only; the {cfg.backend} backend does not "
                    "decode arguments the way strace prints them",
                    hint=f"use `unitrace trace 'syscall:NAME' --backend {cfg.backend} -- CMD` for {cfg.backend}")


def _mirror_signal(signame: object) -> int:
    """Die of the tracee's signal, as strace does (without a core file of our own)."""
    import resource
    import signal as signal_mod

    try:
        sig = signal_mod.Signals[signame] if isinstance(signame, str) else signal_mod.Signals(int(signame))  # type: ignore[arg-type]
    except (KeyError, ValueError):
        return 128 + 9
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    if sig not in (signal_mod.SIGSTOP, signal_mod.SIGTSTP, signal_mod.SIGTTIN, signal_mod.SIGTTOU):
        if sig != signal_mod.SIGKILL:  # SIGKILL has no handler to reset (EINVAL) and cannot be blocked
            signal_mod.signal(sig, signal_mod.SIG_DFL)
            signal_mod.pthread_sigmask(signal_mod.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    return 128 + int(sig)


class _ExitWatcher:
    """Remembers how the first traced process ended: its exit code or its signal."""

    def __init__(self, pids: list[int]) -> None:
        self.root: int | None = pids[0] if pids else None
        self.code: int | None = None
        self.signal: object = None

    def __call__(self, batch: list) -> None:
        from unitrace.events import EventKind

        for ev in batch:
            if self.root is None:
                self.root = ev.pid
            if ev.kind is EventKind.EXIT and ev.tid == self.root and ev.pid == self.root:
                sig = ev.fields.get("signal")
                if sig:
                    self.signal = sig
                else:
                    self.code = ev.ret if ev.ret is not None else 0


def _prints_at_exit_oracle(table: object) -> Callable[[str], bool]:
    """Whether a call's decoder prints arguments at exit (so its entry line ends with `, `). The decoder's
    per-call format spec knows; read it once per name."""
    from unitrace.decode.api import FormatOptions
    from unitrace.decode.syscall import StraceDecoder

    decoder = StraceDecoder(FormatOptions())
    cache: dict[str, bool] = {}

    def prints_at_exit(name: str) -> bool:
        known = cache.get(name)
        if known is None:
            info = table.by_name.get(name)  # type: ignore[attr-defined]
            # DECODE's spec builder is internal; fall back to "yes" (strace's common case) if it moves
            spec = decoder._build(info.nr, info) if info is not None and hasattr(decoder, "_build") else None
            known = cache[name] = bool(getattr(spec, "has_exit", True))
        return known

    return prints_at_exit


def run_strace(cfg: StraceConfig) -> int:
    import signal as signal_mod

    from unitrace.backends import BackendMissing, load_backend
    from unitrace.backends.base import TraceTarget
    from unitrace.decode.signals import SIGNAL_BY_NAME
    from unitrace.decode.table import get_table
    from unitrace.events import SessionStats
    from unitrace.model.probe import Probe, ProbePoint, SyscallTarget
    from unitrace.sinks.strace_text import StraceTextOptions, StraceTextSink
    from unitrace.sinks.summary import SummarySink

    table = get_table()
    names = resolve_trace_set(cfg.trace_exprs, table.by_name, table.classes)
    signals = resolve_signal_set(cfg.signal_exprs, dict(SIGNAL_BY_NAME))
    stop_at = names
    if names is not None and cfg.fd_leaks:
        # the descriptor tables need every call that creates, copies or closes one, whatever is printed
        from unitrace.fdleaks import TRACKED_SYSCALLS

        stop_at = names | {n for n in TRACKED_SYSCALLS if n in table.by_name}
    wanted = sorted(stop_at) if stop_at is not None else sorted(table.by_name)
    patterns = tuple(cfg.trace_exprs) or ("all",)
    probes = (Probe(points=(ProbePoint("syscall", SyscallTarget(patterns, tuple(wanted))),)),)
    backend_name = _check_backend(cfg, probes)

    fd_params = {
        name: tuple(i for i, p in enumerate(info.params) if _FD_PARAM.search(p.name))
        for name, info in table.by_name.items()
    }
    filtering = names is not None or bool(cfg.paths)
    leak_sink = None
    options: dict[str, object] = {
        "follow_forks": cfg.follow > 0,
        "format_options": _format_options(cfg),
        # a filter only pays when some syscalls are left out; -P must see every call that takes an fd
        "seccomp": (cfg.seccomp if cfg.seccomp is not None else names is not None) and not cfg.paths,
        "kill_on_exit": cfg.kill_on_exit,
        "syscalls": frozenset(wanted) if stop_at is not None else None,
        "strace": True,  # bpf: signal, exit and fork records for the lines strace prints
        "stack_traces": cfg.stack,  # -k: the user stack after every syscall line (ptrace engine)
    }
    target = TraceTarget(command=tuple(cfg.command), pids=tuple(cfg.pids), follow_forks=cfg.follow > 0)
    try:
        backend = load_backend(backend_name)
    except BackendMissing as exc:
        from unitrace.errors import PlanError

        raise PlanError(str(exc), hint="unitrace doctor shows what this build and machine can trace") from exc
    compiled = backend.compile(probes, options)

    sinks: list = []
    text_sink: StraceTextSink | None = None
    with contextlib.ExitStack() as files:
        # -o FILE is written atomically (it appears, complete, when tracing ends; /dev/null, FIFOs and
        # ttys are written directly); -ff's per-thread files are opened as threads appear.
        shared_file = None
        if cfg.output and cfg.follow < 2:
            from unitrace.sinks.output import atomic_output

            shared_file = files.enter_context(atomic_output(cfg.output))
        if cfg.count != "c":
            text_sink = StraceTextSink(
                StraceTextOptions(
                    follow=cfg.follow, output_path=cfg.output,
                    pid_prefix=bool(cfg.output) and cfg.follow < 2 and (cfg.follow == 1 or len(cfg.pids) > 1),
                    timestamps=cfg.timestamps, relative=cfg.relative, syscall_times=cfg.syscall_times,
                    status=cfg.status, quiet=cfg.quiet, column=cfg.column),
                out=shared_file, prints_at_exit=_prints_at_exit_oracle(table), initial_tids=cfg.pids)
            sinks.append(text_sink)
        if cfg.count:
            # the table goes where the trace goes: the -o file (shared with the lines under -C) or stderr
            summary_out = shared_file if shared_file is not None else sys.stderr
            sinks.append(SummarySink(summary_out, sort_by=cfg.sort_by,
                                     syscall_number=lambda n: table.by_name[n].nr if n in table.by_name else 1 << 20))
        if cfg.fd_leaks:
            from unitrace.fdleaks import FdLeakSink

            leak_sink = FdLeakSink(sys.stderr)
        # With a seccomp filter the backend stops only at the traced calls; the filter still drops what a
        # backend reports beyond them (every call, when it runs without one).
        event_filter = EventFilter(names, signals, cfg.paths, fd_params)
        watcher = _ExitWatcher(cfg.pids)

        def emit(batch: list) -> None:
            watcher(batch)
            if leak_sink is not None:
                leak_sink.feed(batch)  # before filtering: it needs the calls the user did not ask to see
            kept = event_filter(batch) if (filtering or signals is not None) else batch
            if kept:
                for sink in sinks:
                    sink.feed(kept)

        received: list[int] = []
        status = 0
        stats = SessionStats()
        with backend.start(compiled, target, emit, options) as session:
            def on_signal(signum: int, _frame: object) -> None:
                received.append(signum)
                session.stop()

            saved = {s: signal_mod.signal(s, on_signal)
                     for s in (signal_mod.SIGINT, signal_mod.SIGTERM, signal_mod.SIGHUP, signal_mod.SIGQUIT)}
            if text_sink is not None:
                for pid in cfg.pids:  # start() attached them, or raised
                    text_sink.attached(pid)
            if watcher.root is None:
                # the started command, as the session knows it: the first event seen may be a child's (the
                # bpf backend's per-CPU buffers do not keep the order between processes)
                watcher.root = getattr(session, "root", None)
            try:
                status = session.run()
            finally:
                for s, old in saved.items():
                    signal_mod.signal(s, old)
                stats = session.stats
        stats.filtered += event_filter.filtered
        if text_sink is not None and received:
            for pid in cfg.pids:
                if os.path.exists(f"/proc/{pid}"):
                    text_sink.detached(pid)
        # the summary follows the trace in the same stream: end the lines first, close the files last
        if text_sink is not None:
            text_sink.finish()
        for sink in sinks:
            if sink is not text_sink:
                sink.close(stats)
        if leak_sink is not None:
            leak_sink.close(stats)
        if text_sink is not None:
            text_sink.close(stats)

    if received and not cfg.command:
        return 128 + received[0]
    if watcher.signal is not None:
        return _mirror_signal(watcher.signal)
    if watcher.code is not None:
        return watcher.code & 0xFF
    return status


__all__ = [
    "EXIT_USAGE",
    "EventFilter",
    "StraceConfig",
    "parse_argv",
    "register",
    "resolve_signal_set",
    "resolve_trace_set",
    "run",
    "run_strace",
    "validate",
]
