"""Histogram buckets and their text bars, as bpftrace draws them.

Bucket numbering is shared with the BPF program (unitrace_bpf.h): log2 bucket 0 holds negative values, 1
holds zero, k + 2 holds [2^k, 2^(k+1)); linear bucket 0 is below min, the last is at or above max.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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


LABEL_WIDTH = 16  # bpftrace's columns: the bucket left-aligned in 16, the count right-aligned in 8
COUNT_WIDTH = 8
_EIGHTHS = " ▏▎▍▌▋▊▉"


def _rows(counts: Mapping[int, int], label: Callable[[int], str]) -> list[tuple[str, int]]:
    """(label, count) for every bucket from the lowest to the highest used one, empty ones included."""
    used = [b for b, n in counts.items() if n]
    if not used:
        return []
    return [(label(b), counts.get(b, 0)) for b in range(min(used), max(used) + 1)]


def draw(counts: Mapping[int, int], label: Callable[[int], str], *, width: int = BAR_WIDTH) -> list[str]:
    """bpftrace's text: `[4, 8)   12 |@@@@@      |`, bars scaled to the largest count."""
    rows = _rows(counts, label)
    if not rows:
        return []
    top = max(n for _, n in rows)
    lw = max(LABEL_WIDTH, max(len(t) for t, _ in rows))
    cw = max(COUNT_WIDTH, max(len(str(n)) for _, n in rows))
    return [f"{text:<{lw}}{n:>{cw}} |{'@' * (n * width // top):<{width}}|" for text, n in rows]


def draw_blocks(counts: Mapping[int, int], label: Callable[[int], str], *, width: int = 40) -> list[str]:
    """The same rows with unicode block bars in eighths of a cell, for the TUI."""
    rows = _rows(counts, label)
    if not rows:
        return []
    top = max(n for _, n in rows)
    lw = max(len(t) for t, _ in rows)
    cw = max(len(str(n)) for _, n in rows)
    out = []
    for text, n in rows:
        eighths = n * width * 8 // top
        bar = "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")
        out.append(f"{text:<{lw}} {n:>{cw}} │{bar:<{width}}│")
    return out
