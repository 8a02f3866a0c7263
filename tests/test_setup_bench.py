"""bench/harness.py: alternation, exit statuses, rusage accounting, and refusing a missing program."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness import compare, format_result, run_once
from bench.run_all import discover


def test_variants_alternate_after_the_warmup(tmp_path: Path) -> None:
    order = tmp_path / "order"
    variants = {name: ["sh", "-c", f"echo {name} >> {order}"] for name in ("untraced", "b", "c")}
    result = compare("alt", variants, runs=3, warmup=1, progress=False)
    assert order.read_text().split() == ["untraced", "b", "c"] * 4
    assert all(len(v.samples) == 3 for v in result.variants.values())


def test_exit_status_and_cpu_time_of_descendants_are_accounted() -> None:
    sample = run_once(["sh", "-c", "exit 3"])
    assert sample.status == 3
    killed = run_once(["sh", "-c", "kill -TERM $$"])
    assert killed.status == -15
    # CPU burnt by a grandchild the command waits for is in the command's rusage (as /usr/bin/time shows it)
    busy = run_once(["sh", "-c", "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'"])
    assert busy.status == 0 and busy.user + busy.sys > run_once(["true"]).user
    assert busy.maxrss_kib > 0


def test_report_names_failures_and_ratios() -> None:
    result = compare("r", {"untraced": ["true"], "failing": ["false"]}, runs=2, warmup=0, events=10,
                     progress=False)
    text = format_result(result)
    assert "failing exited non-zero in 2 of 2 runs" in text
    assert "x untraced" in text and "µs/event added" in text


def test_a_missing_program_is_an_error_not_a_fast_variant() -> None:
    with pytest.raises(FileNotFoundError, match="cannot execute /nonexistent/unitrace-prog"):
        run_once(["/nonexistent/unitrace-prog"])


def test_run_all_finds_the_workload_modules_only() -> None:
    names = discover()
    assert "harness" not in names and "run_all" not in names
    here = Path(__file__).resolve().parent.parent / "bench"
    assert set(names) == {p.stem for p in here.glob("*_*.py")} - {"run_all"}
