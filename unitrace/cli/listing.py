"""`unitrace list KIND [PATTERN]`: discover what can be probed."""

from __future__ import annotations

import argparse
import fnmatch

from unitrace.errors import UnitraceError

WHAT = ("syscalls", "tracepoints", "symbols", "probes", "kinds", "classes")


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=WHAT, help="what to list")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell glob (for symbols: BINARY[:GLOB], e.g. libc:mall*)")


def _match(names, pattern: str) -> list[str]:  # type: ignore[no-untyped-def]
    pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n, pat)]


def run(args: argparse.Namespace) -> int:
    rows: list[str]
    if args.what == "syscalls":
        from unitrace.decode.table import get_table

        table = get_table()
        rows = []
        for name in _match(sorted(table.by_name), args.pattern):
            info = table.by_name[name]
            params = ", ".join(f"{p.ctype} {p.name}".replace("* ", "*") for p in info.params)
            classes = " ".join(f"%{c}" for c in sorted(info.classes))
            rows.append(f"{info.nr:4d} {name}({params}){'  ' + classes if classes else ''}")
    elif args.what == "classes":
        from unitrace.decode.table import get_table

        table = get_table()
        rows = [f"%{c}: {' '.join(sorted(names))}" for c, names in sorted(table.classes.items())
                if fnmatch.fnmatchcase(c, args.pattern.lstrip("%"))]
    elif args.what == "tracepoints":
        from unitrace.backends.ftrace.tracefs import Tracefs, find_tracefs

        root = find_tracefs()
        if root is None:
            raise UnitraceError("tracefs is not mounted", hint="mount -t tracefs nodev /sys/kernel/tracing")
        names = [line.replace(":", ":", 1) for line in Tracefs(root).read("available_events").split()]
        rows = _match(sorted(names), args.pattern)
    elif args.what == "symbols":
        from unitrace.symbols.elf import elf_symbols, resolve_binary

        binary, _, glob = args.pattern.partition(":")
        if binary in ("", "*"):
            raise UnitraceError("name a binary or library", hint="unitrace list symbols libc:mall*")
        path = resolve_binary(binary)
        rows = [f"{path}:{n}" for n in _match(elf_symbols(path).function_names(), glob or "*")]
    elif args.what == "probes":
        from unitrace.cli.run import read_probe_file, shipped_probe_names

        rows = []
        for name in _match(shipped_probe_names(), args.pattern):
            first = next((ln.lstrip("# ").strip() for ln in read_probe_file(name).splitlines()
                          if ln.startswith("#") and ln.strip("# ")), "")
            rows.append(f"{name:20s} {first}")
    else:
        from unitrace.model.kinds import KINDS

        rows = [f"{k.name:12s} {k.doc}  e.g. {k.example}" for k in KINDS.values()]
    if not rows:
        raise UnitraceError(f"no {args.what} match {args.pattern!r}")
    print("\n".join(rows))
    return 0
