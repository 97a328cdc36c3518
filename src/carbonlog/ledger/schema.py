"""The ledger's SQLite schema, its version (PRAGMA user_version) and the migrations that
bring an older file to it; the store runs them inside its write transaction.

A file is a carbonlog ledger when it carries carbonlog's PRAGMA application_id (every file of
schema 3 and later does), or, unmarked, when its tables and columns are those of schema 1 or 2
(the ledgers older carbonlog versions wrote). Anything else is another application's file and
is refused before any write or pragma that would change it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable

from carbonlog.ledger.records import LedgerError, clean_tag, metric_values, normalize_tags
from carbonlog.units import J_PER_KWH

SCHEMA_VERSION = 4
APPLICATION_ID = 0x43624C67
"""PRAGMA application_id of the ledgers carbonlog creates ("CbLg")."""

SCHEMA_V2 = """
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
"""Schema 2: tags and metrics in tables of their own; runs with hardware, site, budget, host and
process id. Created by carbonlog before files were marked with its application id."""

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
"""Schema 1, the first released (tags and metrics as JSON text), kept to recognise and migrate
such files."""


def create_schema(conn: sqlite3.Connection) -> None:
    """The current schema: schema 2's tables brought forward by the migrations, so a new file
    and a migrated one are the same."""
    _execute(conn, SCHEMA_V2)
    for step in range(2, SCHEMA_VERSION):
        MIGRATIONS[step](conn)


def stamp(conn: sqlite3.Connection) -> None:
    """Mark the file as a carbonlog ledger of the current schema."""
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def check_version(conn: sqlite3.Connection) -> int:
    """The schema version of a carbonlog ledger, or 0 for an empty file; reads only.

    LedgerError for a newer carbonlog's ledger and for any file carbonlog did not write.
    """
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"schema version {version} is newer than this carbonlog knows "
                f"({SCHEMA_VERSION}); upgrade carbonlog"
            )
        return version
    if application_id == 0:
        if version == 0 and not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return 0
        if version in _UNMARKED and _tables(conn) == _tables_of(_UNMARKED[version]):
            return version
    raise LedgerError(
        "the file is not a carbonlog ledger but another application's SQLite database "
        f"(application_id {application_id}, user_version {version}, tables "
        f"{sorted(_tables(conn)) or 'none'}); it is left untouched"
    )


def _execute(conn: sqlite3.Connection, script: str) -> None:
    """`script` statement by statement (executescript would commit the transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _tables(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """The file's tables (SQLite's own left out) and their columns, in order."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    ]
    return {
        name: tuple(row[0] for row in conn.execute("SELECT name FROM pragma_table_info(?)", [name]))
        for name in names
    }


@functools.cache
def _tables_of(script: str) -> dict[str, tuple[str, ...]]:
    """The tables and columns that `script` creates."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(script)
        return _tables(conn)
    finally:
        conn.close()


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Tags and metrics move from JSON columns to tables; runs gain stage, base model,
    hardware, site, budget, host and stop reason; intervals gain PUE, intensity and kWh."""
    conn.execute("ALTER TABLE runs RENAME TO runs_v1")
    conn.execute("ALTER TABLE intervals RENAME TO intervals_v1")
    _execute(conn, SCHEMA_V2)
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
        f"* COALESCE(r.pue, 1.0) / {J_PER_KWH!r}, i.co2_kg, '' "
        "FROM intervals_v1 i LEFT JOIN runs_v1 r ON r.id = i.run_id"
    )
    for run_id, text in conn.execute("SELECT id, tags FROM runs_v1 WHERE tags IS NOT NULL"):
        conn.executemany(
            "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
            [(run_id, tag) for tag in normalize_tags(json.loads(text))],
        )
    for interval_id, text in conn.execute(
        "SELECT id, metrics FROM intervals_v1 WHERE metrics IS NOT NULL"
    ):
        conn.executemany(
            "INSERT INTO interval_metrics (interval_id, key, value) VALUES (?, ?, ?)",
            [(interval_id, key, value) for key, value in metric_values(json.loads(text)).items()],
        )
    conn.execute("DROP TABLE intervals_v1")
    conn.execute("DROP TABLE runs_v1")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Runs gain their process's PID namespace and boot (a PID is checked only where it
    means something), their launch (SLURM job, step and nodes: joins with sacct) and, for a
    run of a stage other than fit, the fit run it follows; stored tags get their control
    characters escaped, as new ones are."""
    conn.execute("ALTER TABLE runs ADD COLUMN pid_ns TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN boot_id TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN launch TEXT")
    conn.execute(
        "ALTER TABLE runs ADD COLUMN fit_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL"
    )
    for run_id, tag in conn.execute("SELECT run_id, tag FROM run_tags").fetchall():
        if clean_tag(tag) != tag:
            conn.execute("DELETE FROM run_tags WHERE run_id = ? AND tag = ?", (run_id, tag))
            conn.execute(
                "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
                (run_id, clean_tag(tag)),
            )


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Intervals gain each component's uncertainty band and method, the work done (samples,
    tokens), embodied emissions and water; runs gain the hyperparameter search they are a
    trial of (search id, trial, its parameters as JSON). Older rows keep NULL: unknown."""
    for column in (
        "gpu_band_j REAL",
        "cpu_band_j REAL",
        "ram_band_j REAL",
        "methods TEXT",
        "samples REAL",
        "tokens REAL",
        "embodied_kg REAL",
        "water_l REAL",
    ):
        conn.execute(f"ALTER TABLE intervals ADD COLUMN {column}")
    for column in ("search_id TEXT", "trial TEXT", "trial_params TEXT"):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    conn.execute("CREATE INDEX runs_search ON runs(search_id)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}
"""Version n -> the function that brings a version-n file to version n + 1."""


_UNMARKED = {1: SCHEMA_V1, 2: SCHEMA_V2}
"""The schemas of the ledgers carbonlog wrote before it marked them with its application id."""
