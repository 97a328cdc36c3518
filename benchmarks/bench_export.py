"""The exporters' cost: what each adds to a mark (the Tracker's hook, `Exports.interval`), and
what a collection costs the process off the loop (a Prometheus scrape over HTTP, an
OpenTelemetry collection through the SDK's in-memory reader).

Run: python benchmarks/bench_export.py [--marks 2000]. Prints figures (µs); asserts nothing.
"""

from __future__ import annotations

import argparse
import time
import urllib.request

from timing import quartiles

from carbonlog import Tracker
from carbonlog.export import Exports, OtelExporter, PrometheusExporter

TRACKER = {"location": "FR", "gpus": None, "power_w": {"cpu": 30.0, "ram": 3.0}, "ledger": False}


def per_call_us(fn, repeats: int) -> tuple[float, float, float]:
    """Quartiles of one call of `fn`, in µs, over `repeats` calls."""
    spent = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        spent.append((time.perf_counter() - t0) * 1e6)
    return quartiles(spent)


def shown(name: str, figures: tuple[float, float, float]) -> str:
    q1, median, q3 = figures
    return f"{name:<44} median {median:8.1f} µs  (quartiles {q1:.1f}-{q3:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", type=int, default=2000)
    marks = parser.parse_args().marks
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    prometheus = PrometheusExporter(port=0, addr="127.0.0.1")
    otel = OtelExporter(meter_provider=MeterProvider(metric_readers=[reader]))
    tracker = Tracker(exporters=[prometheus, otel], task="sst2", model="bert", **TRACKER).start()
    interval = tracker.mark("epoch")

    print(f"per mark, the hook alone ({marks} calls each):")
    for name, exporters in (
        ("no exporter", []),
        ("PrometheusExporter", [prometheus]),
        ("OtelExporter", [otel]),
        ("both", [prometheus, otel]),
    ):
        exports = Exports(exporters)
        exports._open = list(exporters)  # opened by the tracker above; only publish is timed
        print("  " + shown(name, per_call_us(lambda e=exports: e.interval(interval), marks)))

    print(f"per mark, Tracker.mark() whole ({marks} calls each):")
    for name, exporters in (("without exporters", []), ("with both", None)):
        timed = tracker if exporters is None else Tracker(exporters=exporters, **TRACKER).start()
        print("  " + shown(name, per_call_us(lambda t=timed: t.mark("epoch"), marks)))

    url = f"http://127.0.0.1:{prometheus.port}/metrics"
    scrapes = max(marks // 10, 20)
    print(f"per collection, off the training loop ({scrapes} each):")
    scrape = per_call_us(lambda: urllib.request.urlopen(url).read(), scrapes)
    print("  " + shown("Prometheus scrape over HTTP (127.0.0.1)", scrape))
    print(
        "  "
        + shown(
            "OpenTelemetry collection (in-memory reader)",
            per_call_us(reader.get_metrics_data, scrapes),
        )
    )
    tracker.stop()


if __name__ == "__main__":
    main()
