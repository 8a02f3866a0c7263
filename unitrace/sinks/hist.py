"""Histogram buckets and their text bars, as bpftrace draws them.

Bucket numbering is shared with the BPF program (unitrace_bpf.h): log2 bucket 0 holds negative values, 1
holds zero, k + 2 holds [2^k, 2^(k+1)); linear bucket 0 is below min, the last is at or above max.
"""

from __future__ import annotations

from collections.abc import Mapping

BAR_WIDTH = 52
_SUFFIX = ((1 << 60, "E"), (1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K"))


def log2_bucket(v: int) -> int:
    if v < 0:
        return 0
    if v == 0:
        return 1
    return v.bit_length() + 1


def linear_bucket(v: int, lo: int, hi: int, step: int) -> int:
    if v < lo:
        return 0
    if v >= hi:
        return (hi - lo) // step + 1
    return (v - lo) // step + 1


def _num(n: int) -> str:
    for size, suffix in _SUFFIX:
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def log2_label(bucket: int) -> str:
    if bucket == 0:
        return "(..., 0)"
    if bucket == 1:
        return "[0]"
    if bucket == 2:
        return "[1]"
    lo = 1 << (bucket - 2)
    return f"[{_num(lo)}, {_num(lo * 2)})"


def linear_label(bucket: int, lo: int, hi: int, step: int) -> str:
    last = (hi - lo) // step + 1
    if bucket == 0:
        return f"(..., {lo})"
    if bucket >= last:
        return f"[{hi}, ...)"
    start = lo + (bucket - 1) * step
    return f"[{start}, {start + step})"


def draw(counts: Mapping[int, int], label, *, width: int = BAR_WIDTH) -> list[str]:  # type: ignore[no-untyped-def]
    """One line per bucket from the lowest to the highest used, with bars scaled to the largest count."""
    if not counts:
        return []
    lo, hi = min(counts), max(counts)
    top = max(counts.values()) or 1
    labels = [label(b) for b in range(lo, hi + 1)]
    lw = max(len(x) for x in labels)
    cw = max(len(str(c)) for c in counts.values())
    out = []
    for b, text in zip(range(lo, hi + 1), labels, strict=True):
        n = counts.get(b, 0)
        bar = "@" * (n * width // top)
        out.append(f"{text:<{lw}} {n:>{cw}} |{bar:<{width}}|")
    return out
