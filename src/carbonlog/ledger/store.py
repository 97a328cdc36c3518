"""The ledger's store: one SQLite connection (WAL, busy timeout), its write transactions,
the typed writes of a RunInfo and its Intervals, and the closing of runs a kill left open.

Each interval is committed when it is marked, so a killed process loses at most its open
epoch; several processes may write at once. Older files are migrated on open.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from carbonlog.interval import Interval
from carbonlog.ledger.paths import create_private_file, default_path
from carbonlog.ledger.queries import Queries
from carbonlog.ledger.records import LedgerError, RunInfo, metric_values
from carbonlog.ledger.schema import MIGRATIONS, SCHEMA_VERSION, check_version, create_schema

BUSY_TIMEOUT_S = 10.0
ABANDONED = "its process ended without closing the run (killed, or crashed hard)"

_T = TypeVar("_T")


class Ledger(Queries):
    """Runs and their intervals in one SQLite file; raises LedgerError when it cannot open.

    Only the global rank-zero process writes (the tracker opens it only there); any
    process may read. Safe to share between threads of one process.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._lock = threading.Lock()
        try:
            self._conn = _connect(self.path)
        except (OSError, sqlite3.Error, LedgerError) as exc:
            raise LedgerError(f"cannot open the run ledger {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def begin_run(self, info: RunInfo) -> int:
        """Record a run with status "running" and return its id; runs of this host that a
        kill left open are closed first."""
        site = dict(info.site)
        row = {
            "name": info.name,
            "framework": info.framework,
            "stage": info.stage,
            "model": info.model,
            "base_model": info.base_model,
            "pretrained": None if info.pretrained is None else int(bool(info.pretrained)),
            "task": info.task,
            "hardware": _json(dict(info.hardware)),
            "location": site.get("location"),
            "intensity_g_per_kwh": site.get("g_per_kwh"),
            "pue": site.get("pue"),
            "site": _json(site),
            "budget_kg": info.budget_kg,
            "budget_kwh": info.budget_kwh,
            "on_budget": info.on_budget,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": time.time(),
            "status": "running",
        }

        def insert(conn: sqlite3.Connection) -> int:
            _close_abandoned(conn, row["host"])
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            run_id = conn.execute(
                f"INSERT INTO runs ({columns}) VALUES ({marks})", list(row.values())
            ).lastrowid
            conn.executemany(
                "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
                [(run_id, tag) for tag in info.tags],
            )
            return run_id

        return self._write(insert)

    def resume_run(self, run_id: int) -> bool:
        """Reopen a run for a resumed training (status back to "running"); False if unknown."""

        def reopen(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE runs SET status = 'running', ended_at = NULL, stop_reason = NULL, "
                "host = ?, pid = ? WHERE id = ?",
                (socket.gethostname(), os.getpid(), run_id),
            )
            return cursor.rowcount == 1

        return self._write(reopen)

    def add_interval(
        self, run_id: int, interval: Interval, metrics: Mapping[str, object] | None = None
    ) -> None:
        """Store one interval and the framework's metrics for it, committed at once."""
        values = metric_values(metrics)

        def insert(conn: sqlite3.Connection) -> None:
            interval_id = conn.execute(
                "INSERT INTO intervals (run_id, label, idx, started_at, duration_s, gpu_j, "
                "cpu_j, ram_j, pue, intensity_g_per_kwh, intensity_source, energy_kwh, co2_kg, "
                "estimated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    interval.label,
                    interval.index,
                    interval.started_at_s,
                    interval.duration_s,
                    interval.gpu_j,
                    interval.cpu_j,
                    interval.ram_j,
                    interval.pue,
                    interval.intensity_g_per_kwh,
                    interval.intensity_source,
                    interval.energy_kwh,
                    interval.co2_kg,
                    ",".join(interval.estimated),
                ),
            ).lastrowid
            _put_metrics(conn, interval_id, values)

        self._write(insert)

    def add_metrics(self, run_id: int, interval: Interval, metrics: Mapping[str, object]) -> None:
        """Metrics the framework reports after it closed `interval` (an evaluation that follows
        the epoch end), stored with that interval: its latest row of that index in the run."""
        values = metric_values(metrics)

        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT id FROM intervals WHERE run_id = ? AND idx = ? ORDER BY id DESC LIMIT 1",
                (run_id, interval.index),
            ).fetchone()
            if row is None:
                raise LedgerError(f"run {run_id} has no interval {interval.index}")
            _put_metrics(conn, row[0], values)

        self._write(insert)

    def end_run(self, run_id: int, status: str, stop_reason: str | None, duration_s: float) -> None:
        """Close a run with the status the tracker decided, its end time, duration and why
        it stopped."""
        self._write(
            lambda conn: conn.execute(
                "UPDATE runs SET status = ?, stop_reason = ?, ended_at = ?, duration_s = ? "
                "WHERE id = ?",
                (status, stop_reason, time.time(), duration_s, run_id),
            )
        )

    # -- the connection --------------------------------------------------------------------

    def _write(self, statements: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `statements` in one committed transaction."""
        with self._lock, _transaction(self._conn):
            return statements(self._conn)

    def _read(self, sql: str, params: Sequence[object]) -> list[dict]:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _connect(path: Path) -> sqlite3.Connection:
    """A private, WAL-mode connection to a file of the current schema."""
    create_private_file(path)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        check_version(conn)  # before WAL: a file that is not ours is left untouched
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(f"WAL journal mode refused (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable against a killed process
        conn.execute("PRAGMA foreign_keys = ON")
        _upgrade(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _upgrade(conn: sqlite3.Connection) -> None:
    """Create or migrate the schema in one write transaction (concurrent openers wait)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    with _transaction(conn):
        version = check_version(conn)
        if version == 0:
            create_schema(conn)
        else:
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (unless SQLite already did, so
    the first error is the one told)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _put_metrics(conn: sqlite3.Connection, interval_id: int, values: Mapping[str, float]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO interval_metrics (interval_id, key, value) VALUES (?, ?, ?)",
        [(interval_id, key, value) for key, value in values.items()],
    )


def _json(value: object) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _close_abandoned(conn: sqlite3.Connection, host: str) -> None:
    """Runs of this host still "running" whose process is gone become "interrupted".

    A kill -9 leaves no chance to close a run; the next run on the same host closes it, so
    the cost of experimenting counts it as interrupted. (A reused process id keeps such a
    run open a while longer: it is left alone, never closed wrongly.)
    """
    stale = [
        run_id
        for run_id, pid in conn.execute(
            "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?", (host,)
        )
        if pid is not None and pid != os.getpid() and not _process_alive(pid)
    ]
    conn.executemany(
        "UPDATE runs SET status = 'interrupted', stop_reason = ? WHERE id = ?",
        [(ABANDONED, run_id) for run_id in stale],
    )
