"""Ledger: typed writes of a RunInfo and its Intervals, concurrent writers, runs a kill left open,
file permissions, unusable files, the schema migrations, and the queries behind `carbonlog runs`."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from carbonlog.errors import CarbonlogError
from carbonlog.ledger import (
    SCHEMA_VERSION,
    STATUSES,
    Ledger,
    LedgerError,
    RunInfo,
    default_path,
    normalize_tags,
)
from carbonlog.ledger.paths import ledger_files
from carbonlog.ledger.records import clean_tag, storable_text
from carbonlog.ledger.schema import APPLICATION_ID
from tests.unit.ledger_worker import (
    HARDWARE,
    SITE,
    UNUSABLE,
    interval,
    record_run,
    run_info,
    version_1_file,
    version_2_file,
    version_3_file,
    worker,
)

# -- what a run leaves in the ledger --------------------------------------------------------


def test_a_run_is_stored_with_its_facts_intervals_and_metrics(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    info = RunInfo(
        name="bert-sst2",
        framework="lightning",
        stage="fit",
        model="Bert",
        base_model="bert-base-uncased",
        pretrained=True,
        task="sst2",
        tags=normalize_tags({"sweep": "lr"}),
        hardware=HARDWARE,
        site=SITE,
        budget_kg=2.0,
        budget_kwh=None,
        on_budget="stop",
    )
    with Ledger(path) as ledger:
        run_id = ledger.begin_run(info)
        assert ledger.run(run_id).status == "running"
        ledger.add_interval(run_id, interval(0, 3.6e6), {"val_accuracy": 0.8, "note": "text"})
        ledger.add_interval(run_id, interval(1, 7.2e6), {"loss": float("nan"), "acc": 0.9})
        ledger.add_interval(run_id, interval(2, 1.0, label="end"))
        ledger.end_run(run_id, "completed", None, 30.0)
        run = ledger.run("bert-sst2")
    assert run.id == run_id
    assert (
        run.status,
        run.framework,
        run.stage,
        run.model,
        run.base_model,
        run.pretrained,
        run.task,
        run.tags,
    ) == ("completed", "lightning", "fit", "Bert", "bert-base-uncased", True, "sst2", ["sweep=lr"])
    assert (run.location, run.intensity_g_per_kwh, run.pue) == ("FR", 100.0, 1.5)
    assert run.hardware == HARDWARE and run.site == SITE
    assert run.ended_at >= run.started_at and run.duration_s == 30.0
    assert [i.label for i in run.intervals] == ["epoch", "epoch", "end"]
    assert [i.metrics for i in run.intervals] == [{"val_accuracy": 0.8}, {"acc": 0.9}, {}]
    assert run.epochs == 2
    assert run.energy_kwh == pytest.approx(1.5 * 3 + 1.5 / 3.6e6)
    assert run.co2_kg == pytest.approx(run.energy_kwh * 0.1)
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT budget_kg, budget_kwh, on_budget, host, pid FROM runs")
        assert stored.fetchone() == (2.0, None, "stop", socket.gethostname(), os.getpid())


def test_metrics_reported_after_an_interval_closed_join_it(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        run_id = record_run(ledger, "eval-after-epoch", [1.0, 1.0], [{"loss": 0.5}, {"loss": 0.3}])
        ledger.add_metrics(run_id, interval(0, 1.0), {"eval_accuracy": 0.9, "note": "text"})
        with pytest.raises(LedgerError, match="no interval 7"):
            ledger.add_metrics(run_id, interval(7, 1.0), {"x": 1.0})
        run = ledger.run(run_id)
    assert run.intervals[0].metrics == {"loss": 0.5, "eval_accuracy": 0.9}
    assert run.intervals[1].metrics == {"loss": 0.3}


def test_end_run_stores_the_status_it_is_given(tmp_path):
    """The tracker decides a budget-stopped run's status; the ledger stores it as given."""
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        ended = {}
        for status in STATUSES:
            run_id = ledger.begin_run(run_info(status, on_budget="stop"))
            ledger.end_run(run_id, status, "budget: the run reached its budget", 1.0)
            ended[status] = ledger.run(run_id)
        with pytest.raises(ValueError, match="status must be one of"):
            ledger.end_run(run_id, "done", None, 1.0)
        assert [r.name for r in ledger.runs(status="incomplete")] == ["incomplete"]
    assert {status: run.status for status, run in ended.items()} == {s: s for s in STATUSES}
    assert ended["completed"].stop_reason == "budget: the run reached its budget"


@pytest.mark.parametrize(
    ("tags", "normalized"),
    [
        (None, ()),
        ({}, ()),
        ("baseline", ("baseline",)),
        (["a", 2], ("a", "2")),
        ({"sweep": "lr", "seed": 3}, ("sweep=lr", "seed=3")),
    ],
)
def test_tags_normalize_to_strings(tags, normalized):
    assert normalize_tags(tags) == normalized


@pytest.mark.parametrize(
    ("tag", "stored"),
    [
        ("plain=é", "plain=é"),
        ("two\nlines", "two\\nlines"),
        ("tab\tbell\x07del\x7fnel\x85", "tab\\tbell\\x07del\\x7fnel\\x85"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("bad\udcff", "bad\\udcff"),
        ("two\\nalready", "two\\nalready"),
    ],
)
def test_tags_are_stored_without_control_characters_or_lone_surrogates(tag, stored):
    assert clean_tag(tag) == stored
    assert clean_tag(stored) == stored  # stored tags match themselves again
    assert storable_text(stored) == stored


def test_the_file_and_its_wal_are_readable_by_their_user_only(tmp_path):
    path = tmp_path / "new" / "ledger.sqlite3"
    with Ledger(path) as ledger:
        record_run(ledger, "private", [1.0], status="running")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    assert modes == {
        "ledger.sqlite3": 0o600,
        "ledger.sqlite3-wal": 0o600,
        "ledger.sqlite3-shm": 0o600,
    }
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_existing_file_open_to_others_is_made_private(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    path.chmod(0o644)
    Ledger(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(not hasattr(os, "O_PATH"), reason="O_PATH descriptors are Linux's")
def test_without_a_no_follow_chmod_an_o_path_descriptor_makes_the_files_private(
    tmp_path, monkeypatch
):
    """glibc before 2.32 cannot chmod without following a link: carbonlog does it as newer
    glibc does, through an O_PATH descriptor (whose close drops no SQLite lock)."""
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    keep = sqlite3.connect(path)  # another connection keeps the -wal and -shm files
    keep.execute("SELECT count(*) FROM runs").fetchone()
    files = ledger_files(path)
    for file in files:
        file.chmod(0o644)
    chmod = os.chmod

    def old_glibc(target, mode, *, dir_fd=None, follow_symlinks=True):
        if not follow_symlinks:
            raise NotImplementedError("chmod: follow_symlinks unavailable on this platform")
        chmod(target, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "chmod", old_glibc)
    Ledger(path).close()
    modes = [stat.S_IMODE(file.stat().st_mode) for file in files]
    keep.close()
    assert modes == [0o600] * 3


def test_default_path_follows_carbonlog_home_then_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path))
    assert default_path() == tmp_path / "ledger.sqlite3"
    monkeypatch.delenv("CARBONLOG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_path() == tmp_path / "xdg" / "carbonlog" / "ledger.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_path() == tmp_path / ".local" / "share" / "carbonlog" / "ledger.sqlite3"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_path() == (
        tmp_path / "Library" / "Application Support" / "carbonlog" / "ledger.sqlite3"
    )
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_path() == tmp_path / "local" / "carbonlog" / "ledger.sqlite3"


def test_a_ledger_opens_in_carbonlog_home_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path))
    with Ledger() as ledger:
        run_id = record_run(ledger, "home", [1.0])
    assert (tmp_path / "ledger.sqlite3").is_file()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        assert [run.id for run in ledger.runs()] == [run_id]


# -- resume, concurrent writers ---------------------------------------------------------


def test_resume_run_reopens_a_known_run_only(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        assert ledger.resume_run(41) is False
        run_id = record_run(ledger, "long", [1.0], status="running")
        ledger.end_run(run_id, "interrupted", "preempted", 10.0)
        assert ledger.resume_run(run_id) is True
        ledger.add_interval(run_id, interval(1, 1.0))
        resumed = ledger.run(run_id)
    assert (resumed.status, resumed.ended_at, resumed.stop_reason) == ("running", None, None)
    assert resumed.epochs == 2


@pytest.mark.slow
def test_concurrent_writers_lose_no_row(tmp_path):
    path, processes, runs, epochs = tmp_path / "shared.sqlite3", 4, 2, 25
    workers = [worker("write", path, runs, epochs) for _ in range(processes)]
    for proc in workers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with Ledger(path) as ledger:
        stored = ledger.runs()
        intervals = [ledger.intervals(run.id) for run in stored]
    assert len(stored) == processes * runs
    assert all(run.status == "completed" and run.epochs == epochs for run in stored)
    assert all(
        [i.metrics["epoch"] for i in found[:epochs]] == list(range(epochs)) for found in intervals
    )
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM intervals").fetchone()[0] == (
            processes * runs * (epochs + 1)
        )


# -- files that cannot be used -------------------------------------------------------------


@pytest.mark.parametrize("make", UNUSABLE, ids=lambda f: f.__name__.strip("_"))
def test_an_unusable_ledger_raises_on_open(tmp_path, make):
    with pytest.raises(LedgerError, match="cannot open the run ledger") as raised:
        Ledger(make(tmp_path))
    assert isinstance(raised.value, CarbonlogError)


# -- the schema migration --------------------------------------------------------------------


def _header(path: Path) -> tuple[int, int, str]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA journal_mode").fetchone()[0],
        )


def test_a_new_ledger_is_marked_as_carbonlogs(tmp_path):
    path = tmp_path / "new.sqlite3"
    Ledger(path).close()
    assert _header(path) == (APPLICATION_ID, SCHEMA_VERSION, "wal")


def test_a_newer_carbonlog_ledger_is_refused_untouched(tmp_path):
    path = tmp_path / "newer.sqlite3"
    Ledger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="newer than this carbonlog knows"):
        Ledger(path)
    assert path.read_bytes() == before


def test_a_version_1_ledger_is_migrated_on_open(tmp_path):
    path = tmp_path / "v1.sqlite3"
    version_1_file(path)
    with Ledger(path) as ledger:
        old, older = ledger.run(7), ledger.run(8)
        new_id = record_run(ledger, "new", [1.0])
        by_tag = {g.key: g.runs for g in ledger.totals("tag")}
    assert _header(path) == (APPLICATION_ID, SCHEMA_VERSION, "wal")
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert not {"runs_v1", "intervals_v1"} & tables
    assert (old.name, old.framework, old.task, old.pretrained, old.status, old.tags) == (
        "old",
        "keras",
        "mnist",
        False,
        "completed",
        ["sweep=a"],
    )
    assert (old.duration_s, older.pretrained, older.tags) == (100.0, True, ["baseline"])
    assert [i.metrics for i in old.intervals] == [{"loss": 0.5, "acc": 0.8}, {"loss": 0.25}]
    assert [i.energy_kwh for i in old.intervals] == pytest.approx([1.2, 2.4])
    assert old.energy_kwh == pytest.approx(3.6) and old.co2_kg == pytest.approx(0.18)
    assert old.intervals[0].intensity_g_per_kwh == 50.0 and old.intervals[0].pue == 1.2
    assert new_id == 9
    assert by_tag == {"sweep=a": 1, "baseline": 1, None: 1}


def test_a_version_2_ledger_is_migrated_on_open(tmp_path):
    path = tmp_path / "v2.sqlite3"
    version_2_file(path)
    with Ledger(path) as ledger:
        old = ledger.run(3)
        new_id = record_run(ledger, "new", [1.0], tags=["c"])
        by_tag = {g.key: g.runs for g in ledger.totals("tag")}
        still_open = ledger.run(4)
    assert _header(path) == (APPLICATION_ID, SCHEMA_VERSION, "wal")
    assert (old.name, old.status, old.tags, old.site) == (
        "v2 run",
        "completed",
        ["a\\nb", "c"],  # the newline escaped, as a new tag is; one tag, not two
        SITE,
    )
    assert [(i.energy_kwh, i.estimated, i.metrics) for i in old.intervals] == [
        (1.5, ("gpu",), {"loss": 0.5})
    ]
    assert new_id == 5 and by_tag == {"a\\nb": 1, "c": 2, None: 1}
    assert still_open.status == "running"  # its namespace is unknown: never closed wrongly
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    assert columns[-7:-3] == ["pid_ns", "boot_id", "launch", "fit_run_id"]


def test_a_version_3_ledger_is_migrated_and_old_rows_read_as_unknown(tmp_path):
    path = tmp_path / "v3.sqlite3"
    version_3_file(path)
    with Ledger(path) as ledger:
        old = ledger.run(3)
        run_id = ledger.begin_run(
            run_info("trial", search_id="study-1", trial="2", trial_params={"lr": 0.001})
        )
        ledger.add_interval(
            run_id,
            dataclasses.replace(
                interval(0, 3.6e6),
                band_j={"gpu": 3.6e4, "cpu": 0.0},
                methods={"gpu": "counter", "cpu": "model"},
                samples=512.0,
                tokens=65536.0,
                embodied_kg=0.02,
                water_l=1.5,
            ),
        )
        ledger.add_interval(run_id, dataclasses.replace(interval(1, 3.6e6), samples=512.0))
        new = ledger.run(run_id)
    assert _header(path) == (APPLICATION_ID, SCHEMA_VERSION, "wal")
    interval_0 = old.intervals[0]
    assert (interval_0.band_j, interval_0.methods, interval_0.samples, interval_0.water_l) == (
        {},
        {},
        None,
        None,
    )
    assert (old.samples, old.tokens, old.embodied_kg, old.search_id, old.trial_params) == (
        None,
        None,
        None,
        None,
        {},
    )
    first = new.intervals[0]
    assert first.band_j == {"gpu": 3.6e4, "cpu": 0.0}
    assert first.methods == {"gpu": "counter", "cpu": "model"}
    assert (first.samples, first.tokens, first.embodied_kg, first.water_l) == (
        512.0,
        65536.0,
        0.02,
        1.5,
    )
    assert new.intervals[1].band_j == {} and new.intervals[1].tokens is None
    assert (new.samples, new.tokens, new.embodied_kg, new.water_l) == (1024.0, 65536.0, 0.02, 1.5)
    assert (new.search_id, new.trial, new.trial_params) == ("study-1", "2", {"lr": 0.001})


def test_a_migrated_ledger_has_the_schema_of_a_new_one(tmp_path):
    def schema(path: Path) -> list:
        with sqlite3.connect(path) as conn:
            return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))

    for make in (version_1_file, version_2_file, version_3_file):
        make(tmp_path / make.__name__)
        Ledger(tmp_path / make.__name__).close()
    Ledger(tmp_path / "new").close()
    for make in (version_1_file, version_2_file, version_3_file):
        assert schema(tmp_path / make.__name__) == schema(tmp_path / "new")


# -- queries ---------------------------------------------------------------------------------


def test_queries_filter_runs_and_total_the_cost_of_experimenting(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        record_run(
            ledger, "a", [3.6e6, 3.6e6], task="sst2", model="bert", pretrained=True, tags=["sweep"]
        )
        record_run(
            ledger,
            "b",
            [3.6e6],
            status="failed",
            task="sst2",
            model="bert",
            pretrained=True,
            tags=["sweep"],
        )
        record_run(
            ledger, "c", [7.2e6], status="budget", task="sst2", model="mlp", pretrained=False
        )
        record_run(ledger, "d", [3.6e6], status="running", task="mnist", model="mlp")
        record_run(ledger, "a", [3.6e6], status="interrupted", task="mnist")

        assert [r.name for r in ledger.runs(task="sst2")] == ["c", "b", "a"]
        assert [r.name for r in ledger.runs(model="bert", status="failed")] == ["b"]
        assert [r.name for r in ledger.runs(tag="sweep")] == ["b", "a"]
        assert [r.name for r in ledger.runs(pretrained=False)] == ["c"]
        assert [r.name for r in ledger.runs(limit=2)] == ["a", "d"]
        assert ledger.run("a").status == "interrupted"  # the newest of that name
        assert ledger.run("1").name == ledger.run(1).name == "a"
        assert ledger.run("nope") is None and ledger.run(99) is None
        assert ledger.run("1" * 30) is None and ledger.run("²") is None  # no id: no error
        assert len(ledger.runs(limit=10**30)) == 5 and ledger.runs(limit=0) == []
        with pytest.raises(ValueError, match="limit must be 0 or more"):
            ledger.runs(limit=-1)
        assert ledger.run(1, intervals=False).intervals == []

        by_task = ledger.totals("task")
        by_status = {g.key: g.runs for g in ledger.totals("status")}
        with pytest.raises(ValueError, match="by must be one of"):
            ledger.totals("colour")
        with pytest.raises(ValueError, match="status must be one of"):
            ledger.runs(status="done")
    sst2 = by_task[0]
    assert (sst2.key, sst2.runs, sst2.statuses) == (
        "sst2",
        3,
        {"completed": 1, "failed": 1, "budget": 1},
    )
    assert sst2.energy_kwh == pytest.approx(1.5 * 5)  # PUE 1.5 x 5 kWh at the devices
    assert sst2.co2_kg == pytest.approx(0.15 * 5)
    assert sst2.completed_co2_kg == pytest.approx(0.15 * 2)
    assert sst2.to_dict()["statuses"]["failed"] == 1
    assert by_status == {"completed": 1, "failed": 1, "budget": 1, "running": 1, "interrupted": 1}


def test_records_are_frozen_and_convert_to_plain_dicts(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        record_run(ledger, "a", [1.0], [{"loss": 2.0}], task="t")
        run = ledger.run("a")
        (total,) = ledger.totals("task")
    assert json.loads(json.dumps(run.to_dict()))["intervals"][0]["metrics"] == {"loss": 2.0}
    assert total.to_dict()["completed_co2_kg"] == total.co2_kg
    for record in (run, run.intervals[0], total, run_info("x")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.label = "changed"


def test_reading_a_run_takes_the_same_few_queries_however_long_it_is(tmp_path):
    """Its row, then its intervals and their metrics: never one query per interval."""
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        counts = []
        for epochs in (2, 200):
            run_id = record_run(ledger, f"{epochs}", [1.0] * epochs, [{"loss": 1.0}] * epochs)
            statements = []
            ledger._conn.set_trace_callback(statements.append)
            run = ledger.run(run_id)
            ledger._conn.set_trace_callback(None)
            assert len(run.intervals) == epochs and run.intervals[-1].metrics == {"loss": 1.0}
            counts.append(len(statements))
    assert counts == [3, 3]


def test_the_interval_helpers_match_the_ledger_contract(tmp_path):
    """begin_run needs only a RunInfo; add_interval only an Interval."""
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        run_id = ledger.begin_run(run_info("x", task="t"))
        ledger.add_interval(run_id, interval(0, 3.6e6), None)
        assert ledger.run(run_id).energy_kwh == pytest.approx(1.5)
