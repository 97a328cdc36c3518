"""The ledger's SQLite schema, its version (PRAGMA user_version) and the migrations that
bring an older file to it; the store runs them inside its write transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from carbonlog.ledger.records import LedgerError, metric_values, normalize_tags
from carbonlog.units import J_PER_KWH

SCHEMA_VERSION = 2

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
"""The first released schema (tags and metrics as JSON text), kept to document and test the
migration to the current one."""


def create_schema(conn: sqlite3.Connection) -> None:
    """The current schema, statement by statement (executescript would commit the transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def check_version(conn: sqlite3.Connection) -> int:
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


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Tags and metrics move from JSON columns to tables; runs gain stage, base model,
    hardware, site, budget, host and stop reason; intervals gain PUE, intensity and kWh."""
    conn.execute("ALTER TABLE runs RENAME TO runs_v1")
    conn.execute("ALTER TABLE intervals RENAME TO intervals_v1")
    create_schema(conn)
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


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}
"""Version n -> the function that brings a version-n file to version n + 1."""
