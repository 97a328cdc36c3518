"""Ledger test helpers: run descriptions, synthetic runs and unusable files in-process, and a
worker script for the multi-process tests (run as `python ledger_worker.py MODE PATH N M`).

`write PATH RUNS EPOCHS`: RUNS runs of EPOCHS epochs (and an end interval) each, written
through the ledger's typed writes into the ledger at PATH.
`hold PATH EPOCHS`: one tracked run that marks EPOCHS epochs, says "marked" and waits in
the next epoch until it is killed.
`lock PATH`: takes the ledger's write lock, says "locked" and holds it until a line on stdin.
`diskfull FOLDER FULL_FROM FULL_UNTIL`: mounts a 512 KiB tmpfs on FOLDER (run it in a mount
namespace of its own), tracks four epochs into a ledger there with the filesystem filled from
epoch FULL_FROM until before epoch FULL_UNTIL, and prints the stored run as JSON.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import carbonlog
from carbonlog.interval import Interval
from carbonlog.ledger import SCHEMA_VERSION, Ledger, RunInfo, normalize_tags

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
SITE = {"location": "FR", "g_per_kwh": 100.0, "pue": 1.5, "source": "test"}
HARDWARE = {"gpu": [{"name": "Fake GPU"}], "cpu": [], "ram": []}
SRC = Path(carbonlog.__file__).resolve().parents[1]


def worker(*args: object, prefix: Sequence[str] = ()) -> subprocess.Popen:
    """This script in a child process: `worker("write", path, runs, epochs)`; `prefix` runs it
    under another command (`unshare ...`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(Path(__file__).parent)])}
    return subprocess.Popen(
        [*prefix, sys.executable, __file__, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


class LedgerLock:
    """Another process holding the ledger's write lock from `with` (or `hold()`) to `release()`."""

    def __init__(self, path: Path):
        self.path = path
        self._proc: subprocess.Popen | None = None

    def hold(self) -> LedgerLock:
        self._proc = worker("lock", self.path)
        line = self._proc.stdout.readline()
        assert line.strip() == "locked", self._proc.stderr.read()
        return self

    def release(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            _out, err = self._proc.communicate("\n", timeout=30)
            assert self._proc.returncode == 0, err

    def __enter__(self) -> LedgerLock:
        return self.hold()

    def __exit__(self, *exc) -> None:
        self.release()


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


# -- ledgers of older carbonlog versions --------------------------------------------------------


def version_1_file(path: Path) -> None:
    """A ledger as the first schema wrote it: tags and metrics as JSON text."""
    from carbonlog.ledger.schema import SCHEMA_V1

    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        conn.execute(
            "INSERT INTO runs VALUES (7, 'old', 'keras', 'mlp', 'mnist', 0, ?, 'FR', 50.0, 1.2, "
            "1000.0, 1100.0, 'completed')",
            (json.dumps({"sweep": "a"}),),
        )
        conn.execute(
            "INSERT INTO runs VALUES (8, 'older', 'keras', 'mlp', 'mnist', 1, ?, 'FR', 50.0, 1.2, "
            "2000.0, NULL, 'running')",
            (json.dumps(["baseline"]),),
        )
        for index, (gpu_j, metrics) in enumerate(
            [(3.6e6, {"loss": 0.5, "acc": 0.8}), (7.2e6, {"loss": 0.25, "acc": "n/a"})]
        ):
            conn.execute(
                "INSERT INTO intervals (run_id, label, idx, started_at, duration_s, "
                "gpu_j, cpu_j, ram_j, co2_kg, metrics) VALUES (7, 'epoch', ?, 1000.0, "
                "50.0, ?, 0.0, 0.0, ?, ?)",
                (index, gpu_j, gpu_j * 1.2 / 3.6e6 * 0.05, json.dumps(metrics)),
            )
        conn.execute("PRAGMA user_version = 1")


def version_2_file(path: Path) -> None:
    """A ledger as carbonlog 0.x wrote it at schema 2 (WAL, no application id): one finished
    run with a tag holding a newline, one run left "running" by a process on this host."""
    from carbonlog.ledger.schema import SCHEMA_V2

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA_V2)
    conn.execute(
        "INSERT INTO runs (id, name, task, site, host, pid, started_at, ended_at, duration_s, "
        "status) VALUES (3, 'v2 run', 'sst2', ?, 'elsewhere', 1, 100.0, 200.0, 100.0, "
        "'completed'), (4, 'v2 open', 'sst2', '{}', ?, ?, 300.0, NULL, NULL, 'running')",
        (json.dumps(SITE), socket.gethostname(), os.getpid()),
    )
    conn.executemany(
        "INSERT INTO run_tags (run_id, tag) VALUES (3, ?)", [("a\nb",), ("a\\nb",), ("c",)]
    )
    conn.execute(
        "INSERT INTO intervals (id, run_id, label, idx, gpu_j, cpu_j, ram_j, pue, energy_kwh, "
        "co2_kg, estimated) VALUES (5, 3, 'epoch', 0, 3.6e6, 0, 0, 1.5, 1.5, 0.15, 'gpu')"
    )
    conn.execute("INSERT INTO interval_metrics VALUES (5, 'loss', 0.5)")
    conn.execute("PRAGMA user_version = 2")
    conn.close()


def version_3_file(path: Path) -> None:
    """A ledger as carbonlog wrote it at schema 3: schema 2's file brought to 3 and marked with
    carbonlog's application id, its intervals without bands or counts, its runs without search."""
    from carbonlog.ledger.schema import APPLICATION_ID, MIGRATIONS

    version_2_file(path)
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[2](conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 3")
    conn.close()


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


def _foreign(tmp_path, user_version: int, application_id: int = 0) -> Path:
    """Another application's SQLite file, whose user_version may look like a ledger's."""
    path = tmp_path / f"other-v{user_version}-{application_id:x}.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, result TEXT)")
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.execute(f"PRAGMA application_id = {application_id}")
    return path


def _another_apps_database_at_version_1(tmp_path):
    return _foreign(tmp_path, 1)


def _another_apps_database_at_version_2(tmp_path):
    return _foreign(tmp_path, 2)


def _another_apps_marked_database(tmp_path):
    return _foreign(tmp_path, SCHEMA_VERSION, application_id=0x12345678)


def _a_symlink_to_a_file_of_yours(tmp_path):
    (tmp_path / "yours.txt").write_text("the user's own file")
    (tmp_path / "ledger.sqlite3").symlink_to(tmp_path / "yours.txt")
    return tmp_path / "ledger.sqlite3"


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
    _another_apps_database_at_version_1,
    _another_apps_database_at_version_2,
    _another_apps_marked_database,
    _a_symlink_to_a_file_of_yours,
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


def lock(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    conn.close()


def _fill(filler: Path) -> None:
    """Write `filler` until its filesystem is full."""
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def diskfull(folder: str, full_from: int, full_until: int) -> None:
    from carbonlog.tracking import Tracker

    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", folder], check=True)
    path, filler = Path(folder) / "ledger.sqlite3", Path(folder) / "filler"
    tracker = Tracker(intensity=100.0, power_w=WATTS, ledger=path, run_name="full").start()
    for epoch in range(4):
        if epoch == full_from:
            _fill(filler)
        if epoch == full_until:
            filler.unlink()
        tracker.mark("epoch", {"epoch": epoch})
    summary = tracker.stop()
    filler.unlink(missing_ok=True)
    with Ledger(path) as ledger:
        run = ledger.run(summary.run_id) if summary.run_id is not None else None
    stored = dataclasses.asdict(run) if run is not None else None
    print(json.dumps({"summary_intervals": len(summary.intervals), "run": stored}), flush=True)


if __name__ == "__main__":
    mode, ledger_path, *numbers = sys.argv[1:]
    modes = {"write": write, "hold": hold, "lock": lock, "diskfull": diskfull}
    modes[mode](ledger_path, *map(int, numbers))
