"""The run ledger: every run and its intervals in one SQLite file, the embedded default store.

Each interval is committed when it is marked, so a killed process loses at most its open
epoch. WAL mode and a busy timeout let several processes write at once; PRAGMA
user_version holds the schema version, and older files are migrated on open. The file is
readable by its user only. Totals are summed from the intervals, so a run that was killed
before it could end still counts in "the cost of experimenting".
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from carbonlog.interval import Interval, Summary

ENV_HOME = "CARBONLOG_HOME"
FILE_NAME = "ledger.sqlite3"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 10.0
STATUSES = ("running", "completed", "failed", "interrupted", "budget")
GROUP_BY = ("task", "tag", "model", "base_model", "framework", "status")

_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    framework TEXT,
    stage TEXT,
    model TEXT,
    base_model TEXT,
    pretrained INTEGER,
    task TEXT,
    hardware TEXT,
    location TEXT,
    intensity_g_per_kwh REAL,
    pue REAL,
    site TEXT,
    budget_kg REAL,
    budget_kwh REAL,
    on_budget TEXT,
    host TEXT,
    pid INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_s REAL,
    status TEXT NOT NULL,
    stop_reason TEXT
);
CREATE INDEX runs_task ON runs(task);
CREATE TABLE run_tags (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX run_tags_tag ON run_tags(tag);
CREATE TABLE intervals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    idx INTEGER NOT NULL,
    started_at REAL,
    duration_s REAL,
    gpu_j REAL,
    cpu_j REAL,
    ram_j REAL,
    pue REAL,
    intensity_g_per_kwh REAL,
    intensity_source TEXT,
    energy_kwh REAL,
    co2_kg REAL,
    estimated TEXT
);
CREATE INDEX intervals_run ON intervals(run_id, id);
CREATE TABLE interval_metrics (
    interval_id INTEGER NOT NULL REFERENCES intervals(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (interval_id, key)
);
"""

# The first released schema (tags and metrics as JSON text), kept to document and test the
# migration to the current one.
SCHEMA_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    framework TEXT,
    model TEXT,
    task TEXT,
    pretrained INTEGER,
    tags TEXT,
    location TEXT,
    intensity_g_per_kwh REAL,
    pue REAL,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL
);
CREATE TABLE intervals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    idx INTEGER NOT NULL,
    started_at REAL,
    duration_s REAL,
    gpu_j REAL,
    cpu_j REAL,
    ram_j REAL,
    co2_kg REAL,
    metrics TEXT
);
"""


ABANDONED = "its process ended without closing the run (killed, or crashed hard)"


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


class LedgerError(RuntimeError):
    """The ledger cannot be opened or used; the tracker goes on without it."""


def default_path() -> Path:
    """$CARBONLOG_HOME/ledger.sqlite3, else the user's data directory for carbonlog."""
    home = os.environ.get(ENV_HOME, "").strip()
    if home:
        return Path(home).expanduser() / FILE_NAME
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "carbonlog" / FILE_NAME


@dataclass
class IntervalRecord:
    """One stored interval: joules per component, facility kWh, kg CO2 and the run's metrics."""

    label: str
    index: int
    started_at: float | None
    duration_s: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    pue: float | None
    intensity_g_per_kwh: float | None
    intensity_source: str | None
    energy_kwh: float
    co2_kg: float
    estimated: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunRecord:
    """One stored run; totals are sums over its stored intervals (killed runs included)."""

    id: int
    name: str | None
    framework: str | None
    stage: str | None
    model: str | None
    base_model: str | None
    pretrained: bool | None
    task: str | None
    tags: list[str]
    hardware: dict
    site: dict
    location: str | None
    intensity_g_per_kwh: float | None
    pue: float | None
    started_at: float
    ended_at: float | None
    duration_s: float | None
    status: str
    stop_reason: str | None
    epochs: int
    energy_kwh: float
    co2_kg: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    intervals: list[IntervalRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`run 12 (bert-sst2)` for messages and tables."""
        return f"run {self.id} ({self.name})" if self.name else f"run {self.id}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GroupTotal:
    """The cost of experimenting: every run of a task (or tag...), whatever its status."""

    by: str
    key: str | None
    runs: int
    statuses: dict[str, int]
    energy_kwh: float
    co2_kg: float
    completed_co2_kg: float

    def to_dict(self) -> dict:
        return asdict(self)


def _json(value) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _number(value) -> float | None:
    """A metric as a float, or None for what is not a finite number (tensors convert)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _tags(tags: Mapping[str, str] | Iterable[str] | str | None) -> list[str]:
    """Tags as strings: `key=value` for a mapping, the names themselves for a list."""
    if not tags:
        return []
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, Mapping):
        return [f"{key}={value}" for key, value in tags.items()]
    return [str(tag) for tag in tags]


def _optional_bool(value) -> int | None:
    return None if value is None else int(bool(value))


def _create_schema(conn: sqlite3.Connection) -> None:
    """The current schema, statement by statement (executescript would commit the transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Tags and metrics move from JSON columns to tables; runs gain stage, base model,
    hardware, site, budget, host and stop reason; intervals gain PUE, intensity and kWh."""
    conn.execute("ALTER TABLE runs RENAME TO runs_v1")
    conn.execute("ALTER TABLE intervals RENAME TO intervals_v1")
    _create_schema(conn)
    conn.execute(
        "INSERT INTO runs (id, name, framework, model, task, pretrained, location, "
        "intensity_g_per_kwh, pue, started_at, ended_at, duration_s, status) "
        "SELECT id, name, framework, model, task, pretrained, location, intensity_g_per_kwh, "
        "pue, started_at, ended_at, ended_at - started_at, status FROM runs_v1"
    )
    conn.execute(
        "INSERT INTO intervals (id, run_id, label, idx, started_at, duration_s, gpu_j, cpu_j, "
        "ram_j, pue, intensity_g_per_kwh, intensity_source, energy_kwh, co2_kg, estimated) "
        "SELECT i.id, i.run_id, i.label, i.idx, i.started_at, i.duration_s, i.gpu_j, i.cpu_j, "
        "i.ram_j, r.pue, r.intensity_g_per_kwh, 'ledger v1', "
        "(COALESCE(i.gpu_j, 0) + COALESCE(i.cpu_j, 0) + COALESCE(i.ram_j, 0)) "
        "* COALESCE(r.pue, 1.0) / 3600000.0, i.co2_kg, '' "
        "FROM intervals_v1 i LEFT JOIN runs_v1 r ON r.id = i.run_id"
    )
    for run_id, text in conn.execute("SELECT id, tags FROM runs_v1 WHERE tags IS NOT NULL"):
        conn.executemany(
            "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
            [(run_id, tag) for tag in _tags(json.loads(text))],
        )
    for interval_id, text in conn.execute(
        "SELECT id, metrics FROM intervals_v1 WHERE metrics IS NOT NULL"
    ):
        conn.executemany(
            "INSERT INTO interval_metrics (interval_id, key, value) VALUES (?, ?, ?)",
            [
                (interval_id, str(k), number)
                for k, v in json.loads(text).items()
                if (number := _number(v)) is not None
            ],
        )
    conn.execute("DROP TABLE intervals_v1")
    conn.execute("DROP TABLE runs_v1")


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already (so the first error is the one told)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _check_version(conn: sqlite3.Connection) -> int:
    """The file's schema version; LedgerError for a newer carbonlog's file or another app's."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"schema version {version} is newer than this carbonlog knows "
            f"({SCHEMA_VERSION}); upgrade carbonlog"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise LedgerError("the file holds tables but no carbonlog schema version")
    return version


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}
"""Version n -> the function that brings a version-n file to version n + 1."""


class Ledger:
    """Runs and their intervals in one SQLite file; raises LedgerError when it cannot open.

    Only the global rank-zero process writes (the Tracker opens it only there); any
    process may read. Safe to share between threads of one process.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._lock = threading.Lock()
        try:
            self._conn = self._connect()
        except (OSError, sqlite3.Error, LedgerError) as exc:
            raise LedgerError(f"cannot open the run ledger {self.path}: {exc}") from exc

    # -- opening -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._create_private_file()
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _check_version(conn)  # before WAL: a file that is not ours is left untouched
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"WAL journal mode refused (got {mode!r})")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable against a killed process
            conn.execute("PRAGMA foreign_keys = ON")
            self._upgrade(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_private_file(self) -> None:
        """Create the file 0600 before SQLite does (its -wal and -shm files copy the mode).

        An existing file is changed by path only: closing a descriptor of a file that a
        connection of this process holds would drop its POSIX locks, and another process
        could then delete the WAL under it (a lost-writes corruption SQLite documents).
        """
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            found = self.path.stat()
            if (
                os.name != "nt"
                and stat.S_ISREG(found.st_mode)
                and found.st_uid == os.getuid()
                and stat.S_IMODE(found.st_mode) != 0o600
            ):
                os.chmod(self.path, 0o600)

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Create or migrate the schema in one write transaction (concurrent openers wait)."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _check_version(conn)
            if version == 0:
                _create_schema(conn)
            else:
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, statements: Callable[[sqlite3.Connection], object]):
        """Run `statements` in one committed transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = statements(self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                _rollback(self._conn)
                raise
            return result

    # -- writing (the Tracker's hooks) -------------------------------------------------

    def begin_run(self, tracker) -> int:
        """Record a run with status "running"; returns its id."""
        info = dict(tracker.run_info)
        site = tracker.site.describe()
        row = {
            "name": tracker.run_name,
            "framework": info.get("framework"),
            "stage": info.get("stage"),
            "model": info.get("model") or info.get("model_name"),
            "base_model": info.get("base_model"),
            "pretrained": _optional_bool(info.get("pretrained")),
            "task": info.get("task"),
            "hardware": _json(tracker.hardware()),
            "location": site.get("location"),
            "intensity_g_per_kwh": site.get("g_per_kwh"),
            "pue": site.get("pue"),
            "site": _json(site),
            "budget_kg": getattr(tracker, "budget_kg", None),
            "budget_kwh": getattr(tracker, "budget_kwh", None),
            "on_budget": getattr(tracker, "on_budget", None),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": time.time(),
            "status": "running",
        }
        tags = _tags(tracker.tags)

        def insert(conn: sqlite3.Connection) -> int:
            _close_abandoned(conn, row["host"])
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            run_id = conn.execute(
                f"INSERT INTO runs ({columns}) VALUES ({marks})", list(row.values())
            ).lastrowid
            conn.executemany(
                "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
                [(run_id, tag) for tag in tags],
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
        numbers = {str(k): _number(v) for k, v in (metrics or {}).items()}
        values = {k: v for k, v in numbers.items() if v is not None}

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
            conn.executemany(
                "INSERT OR REPLACE INTO interval_metrics (interval_id, key, value) "
                "VALUES (?, ?, ?)",
                [(interval_id, key, value) for key, value in values.items()],
            )

        self._write(insert)

    def add_metrics(self, run_id: int, interval: Interval, metrics: Mapping[str, object]) -> None:
        """Metrics the framework reports after it closed `interval` (an evaluation that follows
        the epoch end), stored with that interval: its latest row of that index in the run."""
        values = {
            str(k): v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None
        }

        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT id FROM intervals WHERE run_id = ? AND idx = ? ORDER BY id DESC LIMIT 1",
                (run_id, interval.index),
            ).fetchone()
            if row is None:
                raise LedgerError(f"run {run_id} has no interval {interval.index}")
            conn.executemany(
                "INSERT OR REPLACE INTO interval_metrics (interval_id, key, value) "
                "VALUES (?, ?, ?)",
                [(row[0], key, value) for key, value in values.items()],
            )

        self._write(insert)

    def end_run(self, run_id: int, summary: Summary) -> None:
        """Close a run: its status, end time, duration and why it stopped.

        A run that a budget with on_budget="stop" ended is stored with status "budget".
        """

        def close(conn: sqlite3.Connection) -> None:
            found = conn.execute("SELECT on_budget FROM runs WHERE id = ?", (run_id,)).fetchone()
            status = summary.status
            if status == "completed" and summary.stop_reason and found and found[0] == "stop":
                status = "budget"
            conn.execute(
                "UPDATE runs SET status = ?, stop_reason = ?, ended_at = ?, duration_s = ? "
                "WHERE id = ?",
                (status, summary.stop_reason, time.time(), summary.duration_s, run_id),
            )

        self._write(close)

    # -- reading -----------------------------------------------------------------------

    def runs(
        self,
        task: str | None = None,
        model: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        pretrained: bool | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given, newest first, without their intervals.

        `model` matches the model or the base model; `status` is one of STATUSES.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        where, params = [], []
        for column, value in (("r.task", task), ("r.status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if model is not None:
            where.append("(r.model = ? OR r.base_model = ?)")
            params += [model, model]
        if tag is not None:
            where.append("r.id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
            params.append(tag)
        if pretrained is not None:
            where.append("r.pretrained = ?")
            params.append(int(pretrained))
        return self._select_runs(where, params, limit)

    def run(self, ref: int | str, intervals: bool = True) -> RunRecord | None:
        """One run by id, or by name (the newest of that name); None if there is none."""
        found = []
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            found = self._select_runs(["r.id = ?"], [int(ref)])
        if not found:
            found = self._select_runs(["r.name = ?"], [str(ref)], limit=1)
        if not found:
            return None
        record = found[0]
        if intervals:
            record.intervals = self.intervals(record.id)
        return record

    def intervals(self, run_id: int) -> list[IntervalRecord]:
        """A run's intervals in the order they were marked, each with its metrics."""
        metrics: dict[int, dict[str, float]] = {}
        for row in self._read(
            "SELECT m.interval_id, m.key, m.value FROM interval_metrics m "
            "JOIN intervals i ON i.id = m.interval_id WHERE i.run_id = ?",
            [run_id],
        ):
            metrics.setdefault(row["interval_id"], {})[row["key"]] = row["value"]
        return [
            IntervalRecord(
                label=row["label"],
                index=row["idx"],
                started_at=row["started_at"],
                duration_s=row["duration_s"] or 0.0,
                gpu_j=row["gpu_j"] or 0.0,
                cpu_j=row["cpu_j"] or 0.0,
                ram_j=row["ram_j"] or 0.0,
                pue=row["pue"],
                intensity_g_per_kwh=row["intensity_g_per_kwh"],
                intensity_source=row["intensity_source"],
                energy_kwh=row["energy_kwh"] or 0.0,
                co2_kg=row["co2_kg"] or 0.0,
                estimated=tuple(filter(None, (row["estimated"] or "").split(","))),
                metrics=metrics.get(row["id"], {}),
            )
            for row in self._read("SELECT * FROM intervals WHERE run_id = ? ORDER BY id", [run_id])
        ]

    def totals(self, by: str = "task", **filters) -> list[GroupTotal]:
        """The cost of experimenting: kWh and kg CO2 per task (or tag, model...) over all
        runs, failed, interrupted and budget-stopped included; costliest first."""
        if by not in GROUP_BY:
            raise ValueError(f"by must be one of {GROUP_BY}, got {by!r}")
        groups: dict[str | None, GroupTotal] = {}
        for run in self.runs(**filters):
            keys = (run.tags or [None]) if by == "tag" else [getattr(run, by)]
            for key in keys:
                group = groups.setdefault(key, GroupTotal(by, key, 0, {}, 0.0, 0.0, 0.0))
                group.runs += 1
                group.statuses[run.status] = group.statuses.get(run.status, 0) + 1
                group.energy_kwh += run.energy_kwh
                group.co2_kg += run.co2_kg
                if run.status == "completed":
                    group.completed_co2_kg += run.co2_kg
        return sorted(groups.values(), key=lambda g: g.co2_kg, reverse=True)

    def _select_runs(
        self, where: list[str], params: list, limit: int | None = None
    ) -> list[RunRecord]:
        sql = (
            "SELECT r.*, "
            "(SELECT group_concat(tag, char(10)) FROM run_tags t WHERE t.run_id = r.id) AS tags, "
            "COUNT(CASE WHEN i.label = 'epoch' THEN 1 END) AS epochs, "
            "COALESCE(SUM(i.energy_kwh), 0) AS energy_kwh, COALESCE(SUM(i.co2_kg), 0) AS co2_kg, "
            "COALESCE(SUM(i.gpu_j), 0) AS gpu_j, COALESCE(SUM(i.cpu_j), 0) AS cpu_j, "
            "COALESCE(SUM(i.ram_j), 0) AS ram_j "
            "FROM runs r LEFT JOIN intervals i ON i.run_id = r.id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY r.id ORDER BY r.id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._run_record(row) for row in self._read(sql, params)]

    def _read(self, sql: str, params: list) -> list[dict]:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @staticmethod
    def _run_record(row: Mapping) -> RunRecord:
        return RunRecord(
            id=row["id"],
            name=row["name"],
            framework=row["framework"],
            stage=row["stage"],
            model=row["model"],
            base_model=row["base_model"],
            pretrained=None if row["pretrained"] is None else bool(row["pretrained"]),
            task=row["task"],
            tags=sorted((row["tags"] or "").split("\n")) if row["tags"] else [],
            hardware=json.loads(row["hardware"]) if row["hardware"] else {},
            site=json.loads(row["site"]) if row["site"] else {},
            location=row["location"],
            intensity_g_per_kwh=row["intensity_g_per_kwh"],
            pue=row["pue"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            duration_s=row["duration_s"],
            status=row["status"],
            stop_reason=row["stop_reason"],
            epochs=row["epochs"],
            energy_kwh=row["energy_kwh"],
            co2_kg=row["co2_kg"],
            gpu_j=row["gpu_j"],
            cpu_j=row["cpu_j"],
            ram_j=row["ram_j"],
        )
