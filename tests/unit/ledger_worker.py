"""Ledger test helpers: fake trackers and synthetic runs in-process, and a worker script for
the multi-process tests (run as `python ledger_worker.py MODE PATH N M`).

`write PATH RUNS EPOCHS`: RUNS tracked runs of EPOCHS epochs each into the ledger at PATH.
`hold PATH EPOCHS`: one tracked run that marks EPOCHS epochs, says "marked" and waits in
the next epoch until it is killed.
"""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace

from carbonlog.interval import Interval
from carbonlog.tracking import Tracker

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
SITE = {"location": "FR", "g_per_kwh": 100.0, "pue": 1.5, "source": "test"}


def fake_tracker(run_name: str | None = None, tags=None, **run_info) -> SimpleNamespace:
    """What Ledger.begin_run reads from a Tracker, without meters."""
    return SimpleNamespace(
        run_name=run_name,
        tags=tags,
        run_info=run_info,
        hardware=lambda: {"gpu": [{"name": "Fake GPU"}], "cpu": [], "ram": []},
        site=SimpleNamespace(describe=lambda: dict(SITE)),
        budget_kg=None,
        budget_kwh=None,
        on_budget="warn",
    )


def interval(
    index: int,
    gpu_j: float,
    label: str = "epoch",
    started_at_s: float = 0.0,
) -> Interval:
    """An interval of `gpu_j` joules at PUE 1.5 and 100 g/kWh (totals left at zero)."""
    return Interval(label, index, started_at_s, 10.0, gpu_j, 0.0, 0.0, 1.5, 100.0, "test", 0.0, 0.0)


def record_run(
    ledger,
    name: str,
    epochs_j: list[float],
    metrics: list[dict] | None = None,
    status: str = "completed",
    tags=None,
    **run_info,
) -> int:
    """A run of one interval per entry of `epochs_j`, each with its metrics, ended with `status`."""
    from carbonlog.interval import Summary

    run_id = ledger.begin_run(fake_tracker(name, tags, **run_info))
    for index, (joules, values) in enumerate(
        zip(epochs_j, metrics or [{}] * len(epochs_j), strict=True)
    ):
        ledger.add_interval(run_id, interval(index, joules), values)
    if status != "running":
        ledger.end_run(
            run_id, Summary(name, status, 10.0 * len(epochs_j), sum(epochs_j), 0.0, 0.0, 0.0, 0.0)
        )
    return run_id


def _tracker(path: str, name: str) -> Tracker:
    return Tracker(
        intensity=100.0,
        power_w=WATTS,
        ledger=path,
        run_name=name,
        run_info={"task": "concurrency", "pretrained": False},
    )


def write(path: str, runs: int, epochs: int) -> None:
    for run in range(runs):
        tracker = _tracker(path, f"{os.getpid()}-{run}").start()
        for epoch in range(epochs):
            tracker.mark("epoch", {"epoch": epoch, "val_accuracy": epoch / epochs})
        tracker.stop()


def hold(path: str, epochs: int) -> None:
    tracker = _tracker(path, "killed").start()
    for epoch in range(epochs):
        time.sleep(0.02)
        tracker.mark("epoch", {"epoch": epoch})
    print("marked", tracker.run_id, flush=True)
    time.sleep(60)


if __name__ == "__main__":
    mode, ledger_path, *numbers = sys.argv[1:]
    {"write": write, "hold": hold}[mode](ledger_path, *map(int, numbers))
