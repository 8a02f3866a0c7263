"""`unitrace run`: assertions (what they measure, against strace's count), exit codes, JSON/JUnit, baselines."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.run_support import build_demo, unitrace
from unitrace.assertions import AssertionCollector, files_of, implicit_probes, queries_of
from unitrace.errors import ProbeError, UnitraceError
from unitrace.events import Event, EventKind, SessionStats
from unitrace.lang import parse_program, resolve
from unitrace.reports import SCHEMA, RunInfo, apply_baseline, parse_tolerance, report_json, report_junit


@pytest.fixture(scope="module")
def demo(build_c: Callable[..., Path]) -> Path:
    return build_demo(build_c)


def program(text: str):  # type: ignore[no-untyped-def]
    return resolve(parse_program(text, "t.ut"))


def syscall(name: str, args: tuple[str, ...] = (), ret: int = 0, comm: str = "app", duration: int = 1000,
            raw: tuple[int, ...] = (), errno: int = 0) -> Event:
    return Event(EventKind.SYSCALL, 0, 10, 10, name=name, comm=comm, args=args, ret=ret, raw_args=raw,
                 duration_ns=duration, errno=errno)


def collect(text: str, events: list[Event]) -> list:  # type: ignore[type-arg]
    """Evaluate `text`'s assertions over events routed as the runner routes them (to the implicit probes)."""
    prog, index = implicit_probes(program(text))
    collector = AssertionCollector(prog, index)
    routed = []
    for ev in events:
        for point, probe in index.items():
            if ev.name in point.split(":", 1)[1].split(","):
                routed.append(Event(**{s: getattr(ev, s) for s in Event.__slots__ if s != "probe"},
                                    probe=probe))
    collector.feed(routed)
    collector.close(SessionStats())
    return collector.results()


def test_queries_and_their_errors() -> None:
    p = program('assert count(syscall:openat) by comm["cc1"] <= 40\nassert p99(duration(syscall:write)) < 2ms\n'
                "assert sum(arg2, syscall:write,pwrite64) < 10K\n")
    q = [queries_of(a, p)[0] for a in p.assertions]
    assert [(x.func, x.point) for x in q] == [("count", "syscall:openat"), ("p99", "syscall:write"),
                                              ("sum", "syscall:write,pwrite64")]
    assert q[1].unit == "ns" and q[0].unit == ""
    with pytest.raises(ProbeError, match="write sum\\(EXPR, POINT\\)"):
        queries_of(program("assert sum(syscall:write) < 3").assertions[0], program("assert sum(syscall:write) < 3"))
    bad = program("assert 1 < 2")
    with pytest.raises(ProbeError, match="measures nothing"):
        queries_of(bad.assertions[0], bad)
    with pytest.raises(ProbeError, match="unknown syscall 'opneat'"):
        implicit_probes(program("assert count(syscall:opneat) < 3"))


def test_values_percentiles_keys_and_contributors() -> None:
    writes = [syscall("write", ('1</dev/null>', '"x"', "1"), ret=1, duration=d, raw=(1, 0, n), comm=c)
              for d, n, c in ((1000, 10, "a"), (2000, 20, "a"), (3000, 30, "b"), (100_000, 40, "b"))]
    opens = [syscall("openat", ("AT_FDCWD", '"/etc/passwd"', "O_RDONLY"), ret=3),
             syscall("openat", ("AT_FDCWD", '"/nope"', "O_RDONLY"), ret=-2, errno=2)]
    results = collect("assert count(syscall:openat) <= 1\n"
                      "assert p50(duration(syscall:write)) <= 2us\n"
                      "assert p99(duration(syscall:write)) < 50us\n"
                      "assert sum(count, syscall:write) == 100\n"
                      'assert count(syscall:write) by comm["b"] == 2\n'
                      "assert avg(count, syscall:write) > 25\n"
                      "assert count(syscall:openat) by errno[ENOENT] == 1\n", writes + opens)
    got = [(r.passed, r.measured) for r in results]
    assert got == [(False, 2), (True, 2000), (False, 100_000), (True, 100), (True, 2), (False, 25.0), (True, 1)]
    first = results[0].queries[0][1]
    assert first.files == {"/etc/passwd": 1, "/nope": 1}
    total = results[3].queries[0][1]
    assert total.files == {"/dev/null": 100} and total.processes == {"a": 30, "b": 70}  # weighted by bytes


def test_no_values_is_a_failure_that_says_so() -> None:
    [r] = collect("assert max(duration, syscall:read) < 1s\n", [])
    assert not r.passed and r.measured is None and "no values measured for syscall:read" in r.note


def test_files_of_reads_paths_and_decoded_descriptors() -> None:
    assert files_of(syscall("openat", ("AT_FDCWD</w>", '"/a b"', "O_RDONLY"))) == ["/a b"]
    assert files_of(syscall("read", ("3</tmp/x.log>", '"..."', "10"))) == ["/tmp/x.log"]
    assert files_of(syscall("read", ("3", '"..."', "10"))) == []


def test_tolerance_and_baseline_directions() -> None:
    assert parse_tolerance("10%") == pytest.approx(0.10) and parse_tolerance("2.5") == pytest.approx(0.025)
    with pytest.raises(UnitraceError, match="bad tolerance"):
        parse_tolerance("ten")
    results = collect("assert count(syscall:openat) <= 100\nassert count(syscall:write) >= 1\n",
                      [syscall("openat")] * 12 + [syscall("write")] * 8)
    apply_baseline(results, {results[0].text: 10, results[1].text: 10}, 0.10)
    assert [(r.baseline, r.regressed) for r in results] == [(10, True), (10, True)]  # 12 > 11, 8 < 9
    apply_baseline(results, {results[0].text: 11, results[1].text: 8.5}, 0.10)
    assert [r.regressed for r in results] == [False, False]


def test_junit_and_json_structure() -> None:
    results = collect("assert count(syscall:openat) <= 1\nassert count(syscall:write) <= 1\n",
                      [syscall("openat", ("AT_FDCWD", '"/etc/passwd"', "0"))] * 2 + [syscall("write")])
    info = RunInfo("dir/budget.ut", "d", "ptrace", ("./app",), 0, SessionStats(events=3))
    root = ET.fromstring(report_junit(info, results))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "budget" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.text for r in results]
    failure = cases[0].find("failure")
    assert failure is not None and "measured 2" in failure.get("message", "")
    assert "/etc/passwd (2)" in (failure.text or "") and cases[1].find("failure") is None
    doc = report_json(info, results, [])
    assert doc["schema"] == SCHEMA and doc["result"] == "fail" and doc["summary"]["failed"] == 1
    assert doc["assertions"][0]["queries"][0]["top_files"] == [["/etc/passwd", 2]]
    json.dumps(doc)  # serialisable as it stands


# ---- the command, end to end ------------------------------------------------------------------------


BUDGET = """# a budget for the demo
syscall:openat /ret < 0/ { print }
assert count(syscall:openat) <= {limit}
assert count(syscall:execve) == 3
"""


def strace_count(demo: Path, tmp: Path, name: str) -> int:
    log = tmp / "strace.log"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={name}", str(demo)], check=True,
                   capture_output=True, env={"TMPDIR": str(tmp), "PATH": "/usr/bin:/bin"})
    return sum(1 for line in log.read_text().splitlines() if f" {name}(" in line and "resumed>" not in line)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("backend", ["ptrace", pytest.param("bpf", marks=pytest.mark.requires("bpf", "bcc"))])
def test_run_counts_what_strace_counts(backend: str, demo: Path, tmp_path: Path) -> None:
    expected = strace_count(demo, tmp_path, "openat")
    probe = tmp_path / "budget.ut"
    probe.write_text(BUDGET.replace("{limit}", str(expected)))
    proc = unitrace("run", str(probe), "--backend", backend, "--json", "r.json", "--junit", "r.xml", "--",
                    str(demo), tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"with the {backend} backend" in proc.stdout
    assert f"measured {expected}, limit <= {expected}" in proc.stdout
    # the user's own print probe
    assert '"/nonexistent/unitrace-demo", O_RDONLY|O_CLOEXEC) = -1 ENOENT' in proc.stdout
    assert proc.stdout.count("openat(") == 1  # the assertion's probe prints nothing
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["backend"] == backend and doc["assertions"][0]["measured"] == expected
    assert ET.parse(tmp_path / "r.xml").getroot().get("failures") == "0"

    probe.write_text(BUDGET.replace("{limit}", str(expected - 1)))
    proc = unitrace("run", str(probe), "--backend", backend, "--", str(demo), tmp=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAIL  assert count(syscall:openat) <= {expected - 1}" in proc.stdout
    assert "top files: /etc/ld.so.cache (3)" in proc.stdout  # loader, re-exec, /bin/true
    assert "2 assertions: 1 passed, 1 failed" in proc.stdout


def test_baseline_round_trip_and_regression(demo: Path, tmp_path: Path) -> None:
    probe = tmp_path / "budget.ut"
    probe.write_text(BUDGET.replace("{limit}", "1000"))
    proc = unitrace("run", str(probe), "--backend", "ptrace", "--save-baseline", "base.json", "--", str(demo),
                    tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = json.loads((tmp_path / "base.json").read_text())
    measured = base["assertions"][0]["measured"]
    proc = unitrace("run", str(probe), "--backend", "ptrace", "--baseline", "base.json", "--tolerance", "0%",
                    "--", str(demo), tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"baseline {measured}, unchanged" in proc.stdout
    base["assertions"][0]["measured"] = measured - 2
    (tmp_path / "old.json").write_text(json.dumps(base))
    proc = unitrace("run", str(probe), "--backend", "ptrace", "--baseline", "old.json", "--tolerance", "10%",
                    "--", str(demo), tmp=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"baseline {measured - 2}, +2 (" in proc.stdout and "REGRESSION" in proc.stdout


@pytest.mark.parametrize(("text", "args", "message"), [
    ("syscall:opneat\n", (), "unknown syscall 'opneat'"),
    ("assert count(syscall:openat) < 3\n", ("--baseline", "missing.json"), "no baseline file missing.json"),
    ("assert count(syscall:openat) < 3\n", ("--tolerance", "lots"), "bad tolerance"),
])
def test_usage_errors_exit_2(text: str, args: tuple[str, ...], message: str, demo: Path, tmp_path: Path) -> None:
    probe = tmp_path / "bad.ut"
    probe.write_text(text)
    proc = unitrace("run", str(probe), *args, "--", str(demo), tmp=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stdout + proc.stderr


def test_unknown_shipped_name_suggests(tmp_path: Path) -> None:
    proc = unitrace("run", "fd-leak", "--", "true", tmp=tmp_path)
    assert proc.returncode == 2 and "did you mean fd-leaks" in proc.stderr
