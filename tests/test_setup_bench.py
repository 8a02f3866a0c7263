"""bench/harness.py measures what it says: alternation order, rusage of the child tree (not the Python
parent's), failures recorded, and the report's ratios computed from the medians."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.harness import Result, Sample, compare, format_report

ALLOC_C = r"""
#include <stdlib.h>
int main(void) {
    size_t n = 64u << 20;
    volatile char *p = malloc(n);  /* volatile: the compiler may not drop the touching of every page */
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    return p[n - 4096] == 1 ? 0 : 1;
}
"""


def test_variants_alternate(tmp_path: Path) -> None:
    log = tmp_path / "order"
    variants = {v: ["sh", "-c", f"echo {v} >> {log}"] for v in ("A", "B", "C")}
    result = compare("order", variants, runs=2, warmup=1)
    assert log.read_text().split() == ["A", "B", "C"] * 3
    assert {v: len(s) for v, s in result.samples.items()} == {"A": 2, "B": 2, "C": 2}
    assert result.failures == {}


def test_rusage_is_the_childs(build_c: Callable[..., Path]) -> None:
    alloc = build_c(ALLOC_C, name="alloc64")
    result = compare("rss", {"untraced": ["true"], "alloc": [str(alloc)]}, runs=1, warmup=0)
    assert result.median("alloc", "maxrss_kb") >= 64 * 1024
    # a fork straight from Python would carry Python's own high-water mark into `true`
    assert result.median("untraced", "maxrss_kb") < 8 * 1024


def test_failures_are_recorded_and_marked() -> None:
    result = compare("fail", {"untraced": ["true"], "bad": ["sh", "-c", "echo oops >&2; exit 3"]}, runs=1,
                     warmup=0)
    assert result.failures == {"bad": "exit 3: oops"}
    assert "FAILED" in format_report([result])


def test_report_ratios_and_us_per_event() -> None:
    r = Result("calc", {}, events=1000)
    r.samples = {"untraced": [Sample(1.0, 0.5, 0.1, 1024, 0), Sample(3.0, 0.5, 0.1, 1024, 0),
                              Sample(2.0, 0.5, 0.1, 1024, 0)],
                 "traced": [Sample(4.0, 1.0, 1.0, 2048, 0), Sample(5.0, 1.0, 1.0, 2048, 0),
                            Sample(9.0, 1.0, 1.0, 2048, 0)]}
    text = format_report([r], baseline="untraced")
    row = next(line for line in text.splitlines() if line.strip().startswith("traced"))
    assert "2.50x" in row  # median 5.0 over median 2.0
    assert row.split()[-1] == "3000.00"  # (5.0 - 2.0) s / 1000 events in microseconds
