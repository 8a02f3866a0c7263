"""The probe-kind registry and the target parsers: every entry complete, targets tokenised (quotes, regexes,
paths with ':'), comma lists across kinds, exact spans, the late target check."""

from __future__ import annotations

from pathlib import Path

import pytest

from unitrace.errors import ProbeError
from unitrace.lang import check, parse_probe_args, resolve
from unitrace.model.kinds import KINDS, all_kind_names, kind_by_name, split_fields
from unitrace.model.probe import Site, SyscallTarget, TracepointTarget, UserTarget

ROOT = Path(__file__).resolve().parent.parent


def points(text: str):  # type: ignore[no-untyped-def]
    return resolve(parse_probe_args([text])).probes[0].points


def error_of(text: str) -> str:
    with pytest.raises(ProbeError) as info:
        resolve(parse_probe_args([text]))
    return info.value.render()


def test_every_registry_entry_is_complete_and_documented() -> None:
    doc = (ROOT / "docs/language.md").read_text()
    seen: dict[str, str] = {}
    for name, spec in KINDS.items():
        assert spec.name == name and spec.doc and spec.sites
        assert set(spec.return_aliases) <= set(spec.aliases)
        for alias in (spec.name, *spec.aliases):
            assert alias not in seen, f"{alias} names both {seen.get(alias)} and {name}"
            seen[alias] = name
            assert kind_by_name(alias) is KINDS[name]
            assert f"`{alias}`" in doc or f"`{alias}:" in doc, f"docs/language.md does not mention {alias}"
        # the example parses to this kind, and every site the kind has is reachable
        (point,) = points(spec.example)
        assert point.kind == name
        for site in spec.sites:
            suffix = "%return" if site is Site.RETURN else "%entry"
            base = spec.example.removesuffix("%return")
            assert points(base + suffix)[0].site is site
        for site in set(Site) - set(spec.sites):
            with pytest.raises(ProbeError, match=f"no {site.value} site"):
                points(spec.example.removesuffix("%return") + "%" + site.value)
        # garbage in the target is a ProbeError located inside the target
        with pytest.raises(ProbeError) as info:
            resolve(parse_probe_args([f"{name}:=+"]))
        assert info.value.span.col > len(name)
        assert spec.check_target is None or callable(spec.check_target)
    assert sorted(seen) == all_kind_names()


def test_split_fields_respects_quotes_and_regexes() -> None:
    assert [f.text for f in split_fields('"/opt/my:app":main', ":")] == ["/opt/my:app", "main"]
    assert [f.text for f in split_fields("/a{1,2}/,read", ",", regex=True)] == ["/a{1,2}/", "read"]
    assert [(f.text, f.offset) for f in split_fields("a,,b", ",")] == [("a", 0), ("", 2), ("b", 3)]
    # a regex is only a regex where a field begins: a path's slashes split as usual
    assert [f.text for f in split_fields("lib/x,y", ",", regex=True)] == ["lib/x", "y"]


def test_user_targets_paths_and_quotes() -> None:
    assert points("user:/usr/lib/x86_64-linux-gnu/libc.so.6:free")[0].target == UserTarget(
        "/usr/lib/x86_64-linux-gnu/libc.so.6", "free")
    # the last unquoted ':' separates the function: a path may contain ':'
    assert points("user:/srv/a:b/app:main")[0].target == UserTarget("/srv/a:b/app", "main")
    assert [p.target for p in points('user:"/opt/my app/bin":main,helper%return')] == [
        UserTarget("/opt/my app/bin", "main"), UserTarget("/opt/my app/bin", "helper")]
    assert points("user:libc:memcpy@GLIBC_2.14")[0].target == UserTarget("libc", "memcpy@GLIBC_2.14")
    ps = points("uretprobe:libc:malloc,free")
    assert [(str(p), p.site) for p in ps] == [("user:libc:malloc%return", Site.RETURN),
                                              ("user:libc:free%return", Site.RETURN)]


def test_comma_lists_switch_kind_at_a_kind_prefix() -> None:
    ps = points("syscall:openat,read,tracepoint:sched:sched_switch,sched_wakeup,user:libc:malloc")
    assert [str(p) for p in ps] == ["syscall:openat,read", "tracepoint:sched:sched_switch",
                                    "tracepoint:sched:sched_wakeup", "user:libc:malloc"]
    assert ps[2].target == TracepointTarget("sched", "sched_wakeup")
    # each point's span is the segment the user wrote
    assert [(p.span.col, p.span.length) for p in ps] == [(9, 11), (32, 18), (51, 12), (69, 11)]
    # a comma and a space continue the previous kind too
    assert [str(p) for p in points("syscall:openat, read")] == ["syscall:openat", "syscall:read"]


def test_syscall_regex_may_hold_commas_and_negations_remove() -> None:
    (p,) = points("syscall:/^open(at)?$/,/^re.{1,2}$/")
    assert isinstance(p.target, SyscallTarget)
    assert {"open", "openat", "read"} <= set(p.target.names) and "openat2" not in p.target.names
    names = set(points("syscall:%file,!open*")[0].target.names)  # type: ignore[union-attr]
    assert "stat" in names and not any(n.startswith("open") for n in names)
    everything_but = set(points("syscall:!%memory")[0].target.names)  # type: ignore[union-attr]
    assert "read" in everything_but and "mmap" not in everything_but


TARGET_DIAGNOSTICS = [
    ("syscall:openat,opneat,read",
     "<command line>:1:16: error: unknown syscall 'opneat'\nsyscall:openat,opneat,read\n               ^~~~~~\n"
     "hint: did you mean openat, openat2, connect?"),
    ("syscall:%file,!%fiel",
     "<command line>:1:16: error: unknown syscall class '%fiel'\nsyscall:%file,!%fiel\n               ^~~~~\n"
     "hint: did you mean file?"),
    ("syscall:/^(open/",
     "<command line>:1:11: error: bad regular expression: missing ), unterminated subpattern\n"
     "syscall:/^(open/\n          ^"),
    ("syscall:openat%return,read",
     "<command line>:1:9: error: 'openat%return' is not a syscall name, glob, %class or /regex/\n"
     "syscall:openat%return,read\n        ^~~~~~~~~~~~~\n"
     "hint: %return goes at the end of the whole list: syscall:openat,read%return"),
    ("syscall:openat/pid==1/",
     "<command line>:1:15: error: put a space between the probe point and its predicate\n"
     "syscall:openat/pid==1/\n              ^"),
    ("tracepoint:sched:1x",
     "<command line>:1:18: error: '1x' is not a tracepoint event name\ntracepoint:sched:1x\n"
     "                 ^~\nhint: tracepoint:sched:sched_process_exec (unitrace list tracepoints)"),
    ("tracepoint:sched:sched_switch%return",
     "<command line>:1:12: error: tracepoint probes have no return site\ntracepoint:sched:sched_switch%return\n"
     "           ^~~~~~~~~~~~~~~~~~~~~~~~~"),
    ("user:libc:malloc,fr-ee",
     "<command line>:1:18: error: 'fr-ee' is not a function name\nuser:libc:malloc,fr-ee\n"
     "                 ^~~~~\nhint: user:libc:malloc, user:./app:parse, user:/usr/bin/app:main"),
    ("watch:&x:8:r",
     "<command line>:1:12: error: watchpoint access must be w or rw, not 'r'\nwatch:&x:8:r\n"
     "           ^\nhint: x86 debug registers cannot trap reads alone"),
    ("watch:0x7ffd1233:4:rw",
     "<command line>:1:7: error: a 4-byte watchpoint needs a nonzero address aligned to 4\n"
     "watch:0x7ffd1233:4:rw\n      ^~~~~~~~~~"),
    ("uprob:libc:malloc",
     "<command line>:1:1: error: unknown probe kind 'uprob'\nuprob:libc:malloc\n^~~~~\nhint: did you mean uprobe?"),
]


@pytest.mark.parametrize(("text", "expected"), TARGET_DIAGNOSTICS)
def test_target_diagnostics_exact_text(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_tracepoint_target_check_uses_the_kernel_list(tracefs: Path) -> None:
    ok = resolve(parse_probe_args(["tracepoint:sched:sched_process_exec"]))
    assert check(ok, targets=True) is ok
    bad = resolve(parse_probe_args(["tracepoint:sched:sched_proces_exec"]))
    with pytest.raises(ProbeError) as info:
        check(bad, targets=True)
    # the near names depend on the kernel; the closest comes first
    assert info.value.render().startswith(
        "<command line>:1:18: error: no tracepoint sched:sched_proces_exec\n"
        "tracepoint:sched:sched_proces_exec\n                 ^~~~~~~~~~~~~~~~~\n"
        "hint: did you mean sched_process_exec, ")
    with pytest.raises(ProbeError, match="no tracepoint subsystem 'schd'"):
        check(resolve(parse_probe_args(["tracepoint:schd:sched_switch"])), targets=True)
