"""`unitrace doctor`: what this machine can trace, and for every "no" why not and what to do.

    unitrace doctor            the table (capability, yes/no/refused, reason, fix)
    unitrace doctor --json     the same as one JSON object
    unitrace doctor --deep     also compile a trivial bcc program (seconds)
    unitrace doctor --cleanup  remove what dead unitrace sessions left in tracefs

Always exits 0 when it could look: a "no" is information, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable

from unitrace.system.caps import Capabilities, Capability


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--deep", action="store_true", help="also try the slow checks (a real bcc compile)")
    p.add_argument("--cleanup", action="store_true",
                   help="remove tracefs instances and dynamic events left by unitrace sessions that are gone")


def as_json(caps: Capabilities) -> dict[str, object]:
    return {
        "kernel": os.uname().release,
        "machine": os.uname().machine,
        "capabilities": {name: {"available": c.available, "status": c.status, "reason": c.reason, "fix": c.fix}
                         for name, c in caps.items()},
    }


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def render_table(caps: Capabilities, width: int = 100) -> str:
    """Aligned columns; reason and fix wrap inside their own columns so the table stays readable at 80."""
    name_w = max(len("capability"), *(len(n) for n in caps))
    stat_w = len("refused")
    rest = max(30, width - name_w - stat_w - 4)
    reason_w = rest * 11 // 20
    fix_w = rest - reason_w - 2
    lines = [f"{'capability':<{name_w}}  {'state':<{stat_w}}  {'reason':<{reason_w}}  fix".rstrip()]
    lines.append(f"{'-' * name_w}  {'-' * stat_w}  {'-' * reason_w}  {'-' * min(fix_w, 20)}")
    for name, cap in caps.items():
        reasons, fixes = _wrap(cap.reason, reason_w), _wrap(cap.fix, fix_w)
        for i in range(max(len(reasons), len(fixes))):
            left = f"{name:<{name_w}}  {cap.status:<{stat_w}}" if i == 0 else " " * (name_w + stat_w + 2)
            r = reasons[i] if i < len(reasons) else ""
            f = fixes[i] if i < len(fixes) else ""
            lines.append(f"{left}  {r:<{reason_w}}  {f}".rstrip())
    return "\n".join(lines)


def summary(caps: Capabilities) -> str:
    missing = [c for c in caps.values() if not c.available]
    if not missing:
        return "everything unitrace can use is available"
    return "not available: " + ", ".join(f"{c.name} ({c.status})" for c in missing)


def cleanup(say: Callable[[str], None] = print) -> list[str]:
    """Reap what dead sessions left: the ftrace backend knows its own objects and which sessions live; the
    `unitrace-doctor-PID` instances of a doctor that died mid-check are removed here."""
    from unitrace.backends.ftrace.session import reap_stale
    from unitrace.backends.ftrace.tracefs import Tracefs
    from unitrace.system import tracefs
    from unitrace.system.caps import remove_instance
    from unitrace.system.leftovers import find_leftovers

    root = tracefs.find_tracefs()
    if root is None:
        say("tracefs is not mounted: nothing to clean up")
        return []
    reaped = reap_stale(Tracefs(root))
    for item in find_leftovers(root):
        pid = item.owner_pid
        if item.kind == "instance" and item.name.startswith("unitrace-doctor-") and pid is not None \
                and pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            remove_instance(root / "instances" / item.name)
            reaped.append(str(item))
    for item in reaped:
        say(f"removed {item}")
    remaining = find_leftovers(root)
    for item in remaining:
        who = f"PID {item.owner_pid} is still running" if item.owner_pid is not None else "no PID in its name"
        say(f"kept {item} ({who}; remove it by hand if it is stale)")
    if not reaped and not remaining:
        say("no unitrace instances or dynamic events in tracefs")
    return reaped


def run(args: argparse.Namespace) -> int:
    if args.cleanup:
        cleanup()
        return 0
    from unitrace.system.caps import detect

    caps = detect(deep=args.deep)
    if args.json:
        json.dump(as_json(caps), sys.stdout, indent=2)
        print()
        return 0
    width = shutil.get_terminal_size((100, 24)).columns
    print(f"unitrace doctor: kernel {os.uname().release} ({os.uname().machine}), uid {os.geteuid()}")
    print(render_table(caps, max(width, 80)))
    print(summary(caps))
    return 0


__all__ = ["Capability", "as_json", "cleanup", "register", "render_table", "run"]
