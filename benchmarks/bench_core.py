"""Figures of the core's cost: import time and modules, start-to-stop latency, mark() cost, memory.

Run: python benchmarks/bench_core.py. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

IMPORT_PROBE = """
import json, sys, time
before = set(sys.modules)
t0 = time.perf_counter()
import carbonlog
ms = (time.perf_counter() - t0) * 1000
loaded = sorted(m for m in set(sys.modules) - before if not m.startswith("carbonlog"))
print(json.dumps({"ms": ms, "modules": loaded}))
"""


def import_figures(repeats: int = 7) -> tuple[float, list[str]]:
    """Median `import carbonlog` time in a fresh interpreter, and the other modules it loads."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout))
    return statistics.median(r["ms"] for r in runs), runs[-1]["modules"]


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    import_ms, modules = import_figures()
    print(f"import carbonlog: {import_ms:.1f} ms (median of 7 fresh interpreters)")
    print(f"  third-party/stdlib modules it loads ({len(modules)}): {', '.join(modules)}")

    from carbonlog.tracking import Tracker

    rss_before = rss_mib()
    lifecycle_ms = []
    for _ in range(20):
        t0 = time.perf_counter()
        tracker = Tracker(intensity=100.0, ledger=False).start()
        tracker.mark("epoch")
        tracker.stop()
        lifecycle_ms.append((time.perf_counter() - t0) * 1000)
    print(
        f"construct + start + mark + stop: median {statistics.median(lifecycle_ms):.2f} ms, "
        f"first {lifecycle_ms[0]:.2f} ms (tables and meters load once)"
    )

    tracker = Tracker(intensity=100.0, ledger=False).start()
    marks_us = []
    for _ in range(2000):
        t0 = time.perf_counter()
        tracker.mark("epoch")
        marks_us.append((time.perf_counter() - t0) * 1e6)
    tracker.stop()
    marks_us.sort()
    print(
        f"mark(): median {statistics.median(marks_us):.1f} us, "
        f"p99 {marks_us[int(len(marks_us) * 0.99)]:.1f} us over 2000 marks "
        f"(meters: {', '.join(sorted(tracker.hardware()))})"
    )
    print(f"resident memory added by trackers and 2000 intervals: {rss_mib() - rss_before:.2f} MiB")


if __name__ == "__main__":
    main()
