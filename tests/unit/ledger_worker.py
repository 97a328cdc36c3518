"""Ledger test helpers: run descriptions, synthetic runs and unusable files in-process, and a
worker script for the multi-process tests (run as `python ledger_worker.py MODE PATH N M`).

`write PATH RUNS EPOCHS`: RUNS runs of EPOCHS epochs (and an end interval) each, written
through the ledger's typed writes into the ledger at PATH.
`hold PATH EPOCHS`: one tracked run that marks EPOCHS epochs, says "marked" and waits in
the next epoch until it is killed.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import carbonlog
from carbonlog.interval import Interval
from carbonlog.ledger import SCHEMA_VERSION, Ledger, RunInfo, normalize_tags

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
SITE = {"location": "FR", "g_per_kwh": 100.0, "pue": 1.5, "source": "test"}
HARDWARE = {"gpu": [{"name": "Fake GPU"}], "cpu": [], "ram": []}
SRC = Path(carbonlog.__file__).resolve().parents[1]


def worker(*args: object) -> subprocess.Popen:
    """This script in a child process: `worker("write", path, runs, epochs)`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(Path(__file__).parent)])}
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_info(name: str | None = None, tags=None, **fields) -> RunInfo:
    """A run on a fake GPU in France (100 g/kWh, PUE 1.5), its budget set to warn unless told."""
    fields = {"hardware": HARDWARE, "site": SITE, "on_budget": "warn", **fields}
    return RunInfo(name=name, tags=normalize_tags(tags), **fields)


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
    **fields,
) -> int:
    """A run of one interval per entry of `epochs_j`, each with its metrics, ended with `status`."""
    run_id = ledger.begin_run(run_info(name, tags, **fields))
    for index, (joules, values) in enumerate(
        zip(epochs_j, metrics or [{}] * len(epochs_j), strict=True)
    ):
        ledger.add_interval(run_id, interval(index, joules), values)
    if status != "running":
        ledger.end_run(run_id, status, None, 10.0 * len(epochs_j))
    return run_id


# -- files a ledger cannot use ----------------------------------------------------------------


def _not_a_database(tmp_path):
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database, just bytes " * 200)
    return path


def _another_apps_database(tmp_path):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    return path


def _a_newer_schema(tmp_path):
    path = tmp_path / "newer.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    return path


def _parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "ledger.sqlite3"


def _path_is_a_directory(tmp_path):
    (tmp_path / "dir.sqlite3").mkdir()
    return tmp_path / "dir.sqlite3"


UNUSABLE = [
    _not_a_database,
    _another_apps_database,
    _a_newer_schema,
    _parent_is_a_file,
    _path_is_a_directory,
]


def write(path: str, runs: int, epochs: int) -> None:
    with Ledger(path) as ledger:
        for run in range(runs):
            run_id = ledger.begin_run(
                run_info(f"{os.getpid()}-{run}", task="concurrency", pretrained=False)
            )
            for epoch in range(epochs):
                metrics = {"epoch": epoch, "val_accuracy": epoch / epochs}
                ledger.add_interval(run_id, interval(epoch, 1000.0), metrics)
            ledger.add_interval(run_id, interval(epochs, 10.0, label="end"))
            ledger.end_run(run_id, "completed", None, 10.0 * (epochs + 1))


def hold(path: str, epochs: int) -> None:
    from carbonlog.tracking import Tracker  # the ledger's own tests need no tracker

    tracker = Tracker(
        intensity=100.0,
        power_w=WATTS,
        ledger=path,
        run_name="killed",
        run_info={"task": "concurrency", "pretrained": False},
    ).start()
    for epoch in range(epochs):
        time.sleep(0.02)
        tracker.mark("epoch", {"epoch": epoch})
    print("marked", tracker.run_id, flush=True)
    time.sleep(60)


if __name__ == "__main__":
    mode, ledger_path, *numbers = sys.argv[1:]
    {"write": write, "hold": hold}[mode](ledger_path, *map(int, numbers))
