"""How fast the TUI takes events in: the endless recorded demo is replayed at rising rates into the real
app (headless), while keys are pressed. For each rate it prints what the source delivered, what the UI
kept, dropped and still had queued, the key-press latency, and the CPU the process used per second with
the cost of producing the events alone (measured separately) taken off. No thresholds: read the ratios.

    python bench/tui_throughput.py [SECONDS] [RATE ...]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time

from unitrace.tui.app import UnitraceApp
from unitrace.tui.recorded_source import RecordedSource


def producer_cpu(rate: float, seconds: float) -> float:
    """CPU seconds per wall second spent producing and routing events, with nothing consuming them."""
    src = RecordedSource.endless(rate)
    sink_count = [0]
    t0, c0 = time.monotonic(), time.process_time()
    src.start(lambda b: sink_count.__setitem__(0, sink_count[0] + len(b)))
    time.sleep(seconds)
    src.stop()
    return (time.process_time() - c0) / (time.monotonic() - t0)


async def run_ui(rate: float, seconds: float) -> dict[str, float]:
    src = RecordedSource.endless(rate)
    app = UnitraceApp(src)
    latencies: list[float] = []
    frame_times: list[float] = []
    frame = app.frame

    def timed_frame() -> None:
        f0 = time.perf_counter()
        frame()
        frame_times.append(time.perf_counter() - f0)

    app.frame = timed_frame  # type: ignore[method-assign]
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.pause(0.5)
        log = app.main.log_view
        t0, c0 = time.monotonic(), time.process_time()
        end = t0 + seconds
        while time.monotonic() < end:
            # A key press is answered when the cursor has moved: post the key, poll for its effect.
            before = log.cursor
            k0 = time.monotonic()
            app.simulate_key("up")
            while log.cursor == before and time.monotonic() - k0 < 5:
                await asyncio.sleep(0.001)
            latencies.append(time.monotonic() - k0)
            await asyncio.sleep(0.2)
        wall = time.monotonic() - t0
        cpu = time.process_time() - c0
        src.stop()
        for _ in range(100):  # let the UI take what is still queued
            if app.session.pump.pending == 0:
                break
            await asyncio.sleep(0.05)
        await pilot.pause(0.1)
        s = app.session
        return {
            "delivered": src.delivered, "kept": len(s.store.events), "dropped": s.pump.dropped,
            "high_water": s.pump.high_water, "wall": wall, "cpu_per_s": cpu / wall,
            "key_median_ms": statistics.median(latencies) * 1000, "key_max_ms": max(latencies) * 1000,
            "achieved_rate": src.delivered / wall,
            "frame_median_ms": statistics.median(frame_times) * 1000, "frame_max_ms": max(frame_times) * 1000,
        }


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    rates = [float(r) for r in sys.argv[2:]] or [50_000.0, 100_000.0, 200_000.0]
    print(f"{'rate/s':>9} {'achieved':>9} {'delivered':>10} {'kept':>10} {'dropped':>8} {'queued max':>10} "
          f"{'key med':>8} {'key max':>8} {'frame med':>9} {'frame max':>9} {'CPU/s all':>9} {'producer':>9} "
          f"{'UI CPU/s':>9}")
    for rate in rates:
        prod = producer_cpu(rate, min(seconds, 4.0))
        r = asyncio.run(run_ui(rate, seconds))
        print(f"{rate:>9,.0f} {r['achieved_rate']:>9,.0f} {r['delivered']:>10,.0f} {r['kept']:>10,.0f} "
              f"{r['dropped']:>8,.0f} {r['high_water']:>10,.0f} {r['key_median_ms']:>6.1f}ms "
              f"{r['key_max_ms']:>6.1f}ms {r['frame_median_ms']:>7.1f}ms {r['frame_max_ms']:>7.1f}ms "
              f"{r['cpu_per_s']:>9.2f} {prod:>9.2f} {r['cpu_per_s'] - prod:>9.2f}")
        sys.stdout.flush()
    print("kept == delivered and dropped == 0 means the UI lost nothing; 'UI CPU/s' is the CPU the UI "
          "used per second of wall time (1.00 = one core), with the replay's own cost taken off.")
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda args: print(f"thread failed: {args.exc_value!r}", file=sys.stderr)
    sys.exit(main())
