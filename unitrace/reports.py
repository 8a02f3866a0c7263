"""Reports of `unitrace run` for CI systems: JSON (versioned schema), JUnit XML, baselines.

The JSON schema is documented in docs/ci.md; `schema` names its version. A change that removes or renames
a field bumps the version; new fields may appear within one version.

A baseline is the JSON report of an earlier run. Comparing against it fails an assertion whose measured
value moved in the "worse" direction by more than the tolerance: up for `<`/`<=` limits (a budget),
down for `>`/`>=` limits (a floor), either way for `==`/`!=`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from unitrace.assertions import TOP_CONTRIBUTORS, AssertionResult, format_value, value_of
from unitrace.errors import UnitraceError
from unitrace.events import SessionStats

SCHEMA = "unitrace.run/1"


@dataclass
class RunInfo:
    source: str
    description: str
    backend: str
    command: tuple[str, ...]
    exit_status: int | None
    stats: SessionStats


def aggregates_json(sink: object) -> list[dict[str, Any]]:
    """Every aggregation of an AggregateSink: scalar rows as {key, value}, histograms as buckets."""
    out: list[dict[str, Any]] = []
    for agg in getattr(sink, "all", ()):
        func = agg.action.func
        entry: dict[str, Any] = {"name": agg.title, "func": func, "probe": agg.probe}
        if func in ("hist", "lhist"):
            entry["histograms"] = [{"key": [_jsonable(k) for k in key],
                                    "buckets": [{"bucket": b, "count": n} for b, n in sorted(buckets.items())]}
                                   for key, buckets in agg.buckets.items()]
        else:
            rows = []
            for key, cell in agg.cells.items():
                value = {"count": cell.count, "sum": cell.total, "min": cell.minimum, "max": cell.maximum,
                         "avg": cell.total / cell.count if cell.count else 0}[func]
                rows.append({"key": [_jsonable(k) for k in key], "value": value})
            rows.sort(key=lambda r: (-(r["value"] or 0), str(r["key"])))
            entry["rows"] = rows
        out.append(entry)
    return out


def _jsonable(v: object) -> object:
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def assertion_json(r: AssertionResult) -> dict[str, Any]:
    return {
        "text": r.text,
        "line": r.assertion.span.line,
        "passed": r.passed and not r.regressed,
        "held": r.passed,
        "measured": r.measured,
        "limit": r.limit,
        "op": r.op,
        "unit": r.unit,
        "note": r.note,
        "baseline": r.baseline,
        "regressed": r.regressed,
        "queries": [{
            "query": q.text, "func": q.func, "point": q.point, "value": value_of(q, d), "events": d.count,
            "top_files": [[name, n] for name, n in d.files.most_common(TOP_CONTRIBUTORS)],
            "top_processes": [[name, n] for name, n in d.processes.most_common(TOP_CONTRIBUTORS)],
        } for q, d in r.queries],
    }


def report_json(info: RunInfo, results: Sequence[AssertionResult], aggregates: list[dict[str, Any]],
                tolerance: float | None = None) -> dict[str, Any]:
    failed = sum(1 for r in results if not r.passed or r.regressed)
    return {
        "schema": SCHEMA,
        "source": info.source,
        "description": info.description,
        "backend": info.backend,
        "command": list(info.command),
        "exit_status": info.exit_status,
        "result": "fail" if failed else "pass",
        "summary": {"assertions": len(results), "passed": len(results) - failed, "failed": failed},
        "tolerance": tolerance,
        "assertions": [assertion_json(r) for r in results],
        "aggregates": aggregates,
        "stats": {"events": info.stats.events, "lost": info.stats.lost, "dropped": info.stats.dropped,
                  "filtered": info.stats.filtered},
    }


def report_junit(info: RunInfo, results: Sequence[AssertionResult]) -> str:
    """One <testcase> per assertion; a failure's message is the assertion with its measured value."""
    failed = sum(1 for r in results if not r.passed or r.regressed)
    suite_name = os.path.basename(info.source).removesuffix(".ut") or "unitrace"
    suites = ET.Element("testsuites", name="unitrace run", tests=str(len(results)), failures=str(failed))
    suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(results)), failures=str(failed),
                          errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="backend", value=info.backend)
    ET.SubElement(props, "property", name="command", value=" ".join(info.command))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"unitrace.{suite_name}", name=r.text,
                             file=info.source, line=str(r.assertion.span.line))
        detail = _detail(r)
        if not r.passed or r.regressed:
            why = "regressed against the baseline" if r.passed else "assertion failed"
            failure = ET.SubElement(case, "failure", message=f"{why}: {r.text}: measured "
                                    f"{format_value(r.measured, r.unit)}", type="AssertionError")
            failure.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _detail(r: AssertionResult) -> str:
    from unitrace.assertions import render_report

    return render_report([r]).rsplit("\n", 2)[0] + "\n"


# ---- baselines ------------------------------------------------------------------------------------------


def parse_tolerance(text: str) -> float:
    """'10%' or '10' -> 0.10 (a fraction of the baseline value)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*%?\s*", text)
    if not m:
        raise UnitraceError(f"bad tolerance {text!r}", hint="a percentage, e.g. --tolerance 10%")
    return float(m.group(1)) / 100


def load_baseline(path: str) -> dict[str, float | None]:
    """Measured value per assertion text, from a report saved with --save-baseline (or --json)."""
    try:
        with open(path, encoding="utf-8", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UnitraceError(f"no baseline file {path}", hint="make one with --save-baseline FILE") from None
    except (OSError, ValueError) as exc:
        raise UnitraceError(f"cannot read baseline {path}: {exc}") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(schema, str) or not schema.startswith("unitrace.run/"):
        raise UnitraceError(f"{path} is not a unitrace run report (schema {schema!r})")
    if schema != SCHEMA:
        raise UnitraceError(f"{path} has schema {schema}, this unitrace reads {SCHEMA}",
                            hint="save the baseline again with this version")
    return {a["text"]: a.get("measured") for a in data.get("assertions", ())}


def apply_baseline(results: Sequence[AssertionResult], baseline: dict[str, float | None], tolerance: float) -> None:
    """Mark each result with its baseline value and whether it regressed beyond `tolerance`."""
    for r in results:
        old = baseline.get(r.text)
        if old is None or r.measured is None:
            continue
        r.baseline = old
        allowed = abs(old) * tolerance
        worse_up = r.op in ("<", "<=", "") or r.op in ("==", "!=")
        worse_down = r.op in (">", ">=", "==", "!=")
        r.regressed = (worse_up and r.measured > old + allowed) or (worse_down and r.measured < old - allowed)
