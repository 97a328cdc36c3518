"""The ledger's store: one SQLite connection (WAL, busy timeout), its write transactions,
the typed writes of a RunInfo and its Intervals, and the closing of runs a kill left open.

Each interval is committed when it is marked, so a killed process loses at most its open
epoch; several processes may write at once. A write waits for another process's lock up to
the busy timeout: BUSY_TIMEOUT_S for readers (the CLI, reports), a few tens of milliseconds for
the training loop's recorder. A write that cannot be made now (the lock still held, the disk
full) raises LedgerBusy and may be tried again; any other failure raises LedgerError. Only a
file carbonlog created (or wrote at an older schema) is changed; older files are migrated on
open. Text that SQLite cannot store (lone surrogates) is stored escaped, and looked up the same.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from carbonlog.interval import Interval
from carbonlog.ledger.paths import check_unchanged, default_path, make_private, prepare_file
from carbonlog.ledger.processes import Process, close_abandoned
from carbonlog.ledger.queries import Queries
from carbonlog.ledger.records import (
    FIT_STAGE,
    STATUSES,
    LedgerBusy,
    LedgerError,
    RunInfo,
    clean_tag,
    metric_values,
    storable_text,
)
from carbonlog.ledger.schema import MIGRATIONS, SCHEMA_VERSION, check_version, create_schema, stamp

BUSY_TIMEOUT_S = 10.0
"""How long a reader's write (a migration on open) waits for another process's lock."""

_TRANSIENT_SQLITE = (
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk I/O error",
)
_TRANSIENT_ERRNO = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

_T = TypeVar("_T")


class Ledger(Queries):
    """Runs and their intervals in one SQLite file; raises LedgerError when it cannot open.

    Only the global rank-zero process writes (the tracker opens it only there); any
    process may read. Safe to share between threads of one process. `busy_timeout_s` is how
    long a write waits for another process's lock before LedgerBusy.
    """

    def __init__(
        self, path: str | os.PathLike | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S
    ):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._lock = threading.Lock()
        try:
            self._conn = _connect(self.path, busy_timeout_s)
        except (OSError, sqlite3.Error, LedgerError) as exc:
            raise _error(f"cannot open the run ledger {self.path}", exc) from exc

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
        kill left open are closed first. Tags are stored through `clean_tag`. A run of a stage
        other than fit (a standalone validate, test, predict) is linked to the fit it follows
        (`_fit_followed`), in the same transaction."""
        process = Process.current()
        site = dict(info.site)
        fields = {
            "name": info.name,
            "framework": info.framework,
            "stage": info.stage,
            "model": info.model,
            "base_model": info.base_model,
            "pretrained": None if info.pretrained is None else int(bool(info.pretrained)),
            "task": info.task,
            "hardware": _json(dict(info.hardware)),
            "launch": _json(dict(info.launch)),
            "location": site.get("location"),
            "intensity_g_per_kwh": site.get("g_per_kwh"),
            "pue": site.get("pue"),
            "site": _json(site),
            "budget_kg": info.budget_kg,
            "budget_kwh": info.budget_kwh,
            "on_budget": info.on_budget,
            "search_id": info.search_id,
            "trial": info.trial,
            "trial_params": _json(dict(info.trial_params)) if info.trial_params else None,
            **process.columns(),
            "started_at": info.started_at if info.started_at is not None else time.time(),
            "status": "running",
        }
        row = {key: _text(value) for key, value in fields.items()}

        def insert(conn: sqlite3.Connection) -> int:
            close_abandoned(conn)
            row["fit_run_id"] = _fit_followed(conn, row, process)
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            run_id = conn.execute(
                f"INSERT INTO runs ({columns}) VALUES ({marks})", list(row.values())
            ).lastrowid
            conn.executemany(
                "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
                [(run_id, clean_tag(tag)) for tag in info.tags],
            )
            return run_id

        return self._write(insert)

    def resume_run(self, run_id: int) -> bool:
        """Reopen a run for a resumed training (status back to "running"); False if unknown."""

        process = Process.current()

        def reopen(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE runs SET status = 'running', ended_at = NULL, stop_reason = NULL, "
                "host = ?, pid = ?, pid_ns = ?, boot_id = ? WHERE id = ?",
                (*map(_text, process.columns().values()), run_id),
            )
            return cursor.rowcount == 1

        return self._write(reopen)

    def add_interval(
        self, run_id: int, interval: Interval, metrics: Mapping[str, object] | None = None
    ) -> None:
        """Store one interval and the framework's metrics for it, committed at once."""
        values = metric_values(metrics)

        row = {
            "run_id": run_id,
            "label": _text(interval.label),
            "idx": interval.index,
            "started_at": interval.started_at_s,
            "duration_s": interval.duration_s,
            "gpu_j": interval.gpu_j,
            "cpu_j": interval.cpu_j,
            "ram_j": interval.ram_j,
            "pue": interval.pue,
            "intensity_g_per_kwh": interval.intensity_g_per_kwh,
            "intensity_source": _text(interval.intensity_source),
            "energy_kwh": interval.energy_kwh,
            "co2_kg": interval.co2_kg,
            "estimated": _text(",".join(interval.estimated)),
            **{f"{c}_band_j": interval.band_j.get(c) for c in ("gpu", "cpu", "ram")},
            "methods": _text(" ".join(f"{c}={m}" for c, m in interval.methods.items())) or None,
            "samples": interval.samples,
            "tokens": interval.tokens,
            "embodied_kg": interval.embodied_kg,
            "water_l": interval.water_l,
        }
        sql = f"INSERT INTO intervals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"

        def insert(conn: sqlite3.Connection) -> None:
            interval_id = conn.execute(sql, list(row.values())).lastrowid
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
        """Close a run with the status the tracker decided (one of STATUSES), its end time,
        duration and why it stopped."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._write(
            lambda conn: conn.execute(
                "UPDATE runs SET status = ?, stop_reason = ?, ended_at = ?, duration_s = ? "
                "WHERE id = ?",
                (status, _text(stop_reason), time.time(), duration_s, run_id),
            )
        )

    # -- the connection --------------------------------------------------------------------

    def _write(self, statements: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `statements` in one committed transaction; LedgerBusy if it cannot be now."""
        try:
            with self._lock, _transaction(self._conn):
                return statements(self._conn)
        except sqlite3.Error as exc:
            raise _error(f"cannot write the run ledger {self.path}", exc) from exc

    def _read(self, sql: str, params: Sequence[object]) -> list[dict]:
        try:
            with self._lock:
                cursor = self._conn.execute(sql, [_text(p) for p in params])
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _error(f"cannot read the run ledger {self.path}", exc) from exc


def _fit_followed(
    conn: sqlite3.Connection, row: Mapping[str, object], process: Process
) -> int | None:
    """The id of the fit run that a run of another stage follows: the newest fit of the same
    name (or as unnamed) in this process, else the newest fit of that name on this host; None
    for a fit, a run of no stage, and a run that follows none."""
    if row["stage"] in (None, FIT_STAGE):
        return None
    found = conn.execute(
        "SELECT id FROM runs WHERE stage = ? AND name IS ? AND host = ? AND pid = ? "
        "AND pid_ns IS ? AND boot_id IS ? ORDER BY id DESC LIMIT 1",
        (FIT_STAGE, row["name"], *map(_text, process.columns().values())),
    ).fetchone()
    if found is None and row["name"] is not None:
        found = conn.execute(
            "SELECT id FROM runs WHERE stage = ? AND name = ? AND host = ? "
            "ORDER BY id DESC LIMIT 1",
            (FIT_STAGE, row["name"], _text(process.host)),
        ).fetchone()
    return None if found is None else found[0]


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A private, WAL-mode connection to a carbonlog ledger of the current schema."""
    found = prepare_file(path)
    conn = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        check_unchanged(path, found)
        with _transaction(conn, "BEGIN DEFERRED"):  # one snapshot, as another process creates it
            check_version(conn)  # reads only: a file that is not ours is left as it was
        make_private(path)
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
        stamp(conn)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """`begin` ... COMMIT, rolled back on any error (unless SQLite already did, so the first
    error is the one told)."""
    conn.execute(begin)
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


def _text(value: _T) -> _T:
    """A str as SQLite can store it (`storable_text`); anything else as it is."""
    return storable_text(value) if isinstance(value, str) else value


def _error(context: str, exc: BaseException) -> LedgerError:
    """`exc` as the ledger tells it: LedgerBusy when the same call may succeed later (a lock
    held past the busy timeout, a full disk), else LedgerError."""
    transient = (
        isinstance(exc, LedgerBusy)
        or (isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(_TRANSIENT_SQLITE))
        or (isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNO)
    )
    return (LedgerBusy if transient else LedgerError)(f"{context}: {exc}")
