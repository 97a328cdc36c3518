"""Ledger: runs and intervals committed as they happen, concurrent writers, kill -9, corrupt and
unwritable files, the schema migration, and the queries behind `carbonlog runs`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import carbonlog
import carbonlog._log
from carbonlog.ledger import SCHEMA_V1, SCHEMA_VERSION, Ledger, LedgerError, default_path
from carbonlog.tracking import Tracker
from carbonlog.units import J_PER_KWH
from tests.unit.ledger_worker import WATTS, fake_tracker, interval, record_run

WORKER = Path(__file__).with_name("ledger_worker.py")
SRC = Path(carbonlog.__file__).resolve().parents[1]


def tracked(path, **kwargs) -> Tracker:
    options = {"intensity": 100.0, "power_w": WATTS, "ledger": str(path)}
    options.update(kwargs)
    return Tracker(**options)


def worker(*args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(WORKER.parent)])}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# -- what a run leaves in the ledger --------------------------------------------------------


def test_a_tracked_run_is_stored_with_its_intervals_metrics_and_facts(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(
        path,
        run_name="bert-sst2",
        tags={"sweep": "lr"},
        run_info={
            "framework": "lightning",
            "stage": "fit",
            "model": "Bert",
            "base_model": "bert-base-uncased",
            "pretrained": True,
            "task": "sst2",
        },
    ).start()
    tracker.mark("epoch", {"val_accuracy": 0.8, "loss": 0.5, "note": "not a number"})
    tracker.mark("epoch", {"val_accuracy": 0.9, "loss": 0.3})
    summary = tracker.stop()

    with Ledger(path) as ledger:
        run = ledger.run("bert-sst2")
    assert run.id == summary.run_id == tracker.run_id
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
    assert (run.location, run.intensity_g_per_kwh, run.pue) == ("USER", 100.0, 1.0)
    assert run.hardware["gpu"] and run.site["g_per_kwh"] == 100.0
    assert run.ended_at >= run.started_at and run.duration_s == pytest.approx(summary.duration_s)
    assert [i.label for i in run.intervals] == ["epoch", "epoch", "end"]
    assert run.intervals[0].metrics == {"val_accuracy": 0.8, "loss": 0.5}
    assert run.epochs == 2
    assert run.energy_kwh == pytest.approx(summary.energy_kwh, rel=1e-12)
    assert run.co2_kg == pytest.approx(summary.co2_kg, rel=1e-12)
    first = run.intervals[0]
    assert first.gpu_j == pytest.approx(WATTS["gpu"] * first.duration_s, rel=0.01)
    assert first.energy_kwh == pytest.approx(
        (first.gpu_j + first.cpu_j + first.ram_j) / J_PER_KWH, rel=1e-12
    )


def test_metrics_reported_after_an_epoch_closed_join_that_epoch(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path, run_name="eval-after-epoch").start()
    first = tracker.mark("epoch", {"loss": 0.5})
    tracker.annotate(first, {"eval_accuracy": 0.9, "note": "not a number"})
    tracker.mark("epoch", {"loss": 0.3})
    tracker.stop()
    with Ledger(path) as ledger:
        run = ledger.run("eval-after-epoch")
        with pytest.raises(LedgerError, match="no interval 7"):
            ledger.add_metrics(run.id, interval(7, 1.0), {"x": 1.0})
    assert run.intervals[0].metrics == {"loss": 0.5, "eval_accuracy": 0.9}
    assert run.intervals[1].metrics == {"loss": 0.3}


def test_the_file_and_its_wal_are_readable_by_their_user_only(tmp_path):
    path = tmp_path / "new" / "ledger.sqlite3"
    tracker = tracked(path).start()
    tracker.mark("epoch")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    tracker.stop()
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


def test_a_tracker_writes_to_carbonlog_home_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path))
    summary = Tracker(intensity=100.0, power_w=WATTS).start().stop()
    with Ledger() as ledger:
        assert [run.id for run in ledger.runs()] == [summary.run_id]


def test_only_global_rank_zero_writes(tmp_path):
    from carbonlog.distributed import Ranks

    tracker = tracked(tmp_path / "l.sqlite3", ranks=Ranks(rank=1, local_rank=1, world_size=2))
    tracker.start().stop()
    assert tracker.ledger is None and not (tmp_path / "l.sqlite3").exists()


# -- statuses, resume ------------------------------------------------------------------------


def test_failed_budget_and_warned_runs_keep_their_status_and_reason(tmp_path):
    path = tmp_path / "l.sqlite3"
    with (
        pytest.raises(KeyError),
        carbonlog.track(intensity=100.0, power_w=WATTS, ledger=str(path), run_name="boom") as t,
    ):
        t.mark("epoch")
        raise KeyError("boom")
    stopped = tracked(path, run_name="stopped", budget_kwh=1e-12, on_budget="stop").start()
    stopped.mark("epoch")
    assert stopped.should_stop
    stopped.stop()
    warned = tracked(path, run_name="warned", budget_kwh=1e-12, on_budget="warn").start()
    warned.mark("epoch")
    warned.stop()
    tracked(path, run_name="stopped by hand").start().stop(status="interrupted")

    with Ledger(path) as ledger:
        runs = {run.name: run for run in ledger.runs()}
    assert runs["boom"].status == "failed" and runs["boom"].epochs == 1
    assert runs["stopped"].status == "budget"
    assert runs["stopped"].stop_reason.startswith("budget: the run reached")
    assert runs["warned"].status == "completed" and runs["warned"].stop_reason
    assert runs["stopped by hand"].status == "interrupted"


def test_a_resumed_run_continues_its_ledger_row(tmp_path):
    path = tmp_path / "l.sqlite3"
    first = tracked(path, run_name="long").start()
    first.mark("epoch")
    state = first.state_dict()
    first.stop(status="interrupted")

    second = tracked(path, run_name="long")
    second.load_state_dict(state)
    second.start()
    with Ledger(path) as ledger:
        assert ledger.run(first.run_id).status == "running"
    second.mark("epoch")
    second.stop()
    with Ledger(path) as ledger:
        runs = ledger.runs()
    assert [(r.id, r.status, r.epochs) for r in runs] == [(first.run_id, "completed", 2)]


def test_resuming_an_unknown_run_opens_a_new_one(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        assert ledger.resume_run(41) is False
    tracker = tracked(tmp_path / "l.sqlite3")
    tracker.load_state_dict({**tracker.state_dict(), "run_id": 41})
    tracker.start().stop()
    assert tracker.run_id == 1


# -- several writers, kill -9 ----------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_writers_lose_no_row(tmp_path):
    path, processes, runs, epochs = tmp_path / "shared.sqlite3", 4, 2, 25
    workers = [worker("write", path, runs, epochs) for _ in range(processes)]
    for proc in workers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "ledger" not in err, err
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


@pytest.mark.slow
def test_kill_9_keeps_every_completed_epoch(tmp_path):
    path = tmp_path / "killed.sqlite3"
    proc = worker("hold", path, 3)
    try:
        line = proc.stdout.readline()
        assert line.startswith("marked"), proc.stderr.read()
        time.sleep(0.05)  # well inside the open fourth epoch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    with Ledger(path) as ledger:
        run = ledger.run("killed")
        totals = ledger.totals("task")
    assert run.id == int(line.split()[1])
    assert run.status == "running" and run.ended_at is None
    assert [i.label for i in run.intervals] == ["epoch"] * 3
    assert [i.metrics["epoch"] for i in run.intervals] == [0, 1, 2]
    for stored in run.intervals:
        assert stored.gpu_j == pytest.approx(WATTS["gpu"] * stored.duration_s, rel=0.01)
    assert totals[0].key == "concurrency" and totals[0].statuses == {"running": 1}
    assert totals[0].co2_kg == pytest.approx(sum(i.co2_kg for i in run.intervals))

    _train(path)  # the next run on this host closes the abandoned one
    with Ledger(path) as ledger:
        closed = ledger.run(run.id)
    assert closed.status == "interrupted" and "killed" in closed.stop_reason
    assert len(closed.intervals) == 3


# -- files that cannot be used never stop training ---------------------------------------------


def _train(path, epochs: int = 2):
    tracker = tracked(path).start()
    for _ in range(epochs):
        time.sleep(0.005)
        tracker.mark("epoch", {"loss": 1.0})
    return tracker, tracker.stop()


def _assert_trained_without_ledger(tracker, summary, epochs: int = 2):
    assert tracker.ledger is None
    assert [iv.label for iv in summary.intervals] == ["epoch"] * epochs + ["end"]
    assert summary.gpu_j == pytest.approx(WATTS["gpu"] * summary.duration_s, abs=0.05)
    assert summary.co2_kg == pytest.approx(summary.energy_kwh * 0.1, rel=1e-12)


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


@pytest.mark.parametrize("make", UNUSABLE, ids=lambda f: f.__name__.strip("_"))
def test_an_unusable_ledger_raises_on_open(tmp_path, make):
    with pytest.raises(LedgerError, match="cannot open the run ledger"):
        Ledger(make(tmp_path))


@pytest.mark.parametrize("make", UNUSABLE, ids=lambda f: f.__name__.strip("_"))
def test_an_unusable_ledger_never_stops_training_and_says_so_once(tmp_path, make, carbon_warnings):
    path = make(tmp_path)
    before = path.read_bytes() if path.is_file() else None
    for _ in range(2):
        tracker, summary = _train(path)
        _assert_trained_without_ledger(tracker, summary)
    said = [r.getMessage() for r in carbon_warnings]
    assert len(said) == 1 and "ledger is unavailable" in said[0], said
    if before is not None:
        assert path.read_bytes() == before  # the user's file is left as it was


def test_corrupt_pages_behind_a_valid_header_never_stop_training(tmp_path, carbon_warnings):
    path = tmp_path / "l.sqlite3"
    with Ledger(path) as ledger:
        record_run(ledger, "before", [1.0])
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))
    tracker, summary = _train(path)
    _assert_trained_without_ledger(tracker, summary)
    assert len(carbon_warnings) == 1 and "ledger" in carbon_warnings[0].getMessage()


def test_writes_refused_mid_run_warn_once_and_keep_the_totals(tmp_path, carbon_warnings):
    """SQLite refusing writes as it does for a read-only file ("attempt to write a readonly
    database"), here through query_only: tests run as root, where file modes do not bite."""
    tracker = tracked(tmp_path / "l.sqlite3").start()
    tracker.mark("epoch")
    tracker.ledger._conn.execute("PRAGMA query_only = ON")
    for _ in range(3):
        tracker.mark("epoch")
    summary = tracker.stop()
    assert len(summary.intervals) == 5 and summary.energy_kwh > 0
    said = [r.getMessage() for r in carbon_warnings]
    assert len(said) == 1 and "readonly" in said[0], said


@pytest.mark.skipif(
    os.name == "nt" or os.geteuid() == 0,
    reason="root ignores file modes: a read-only file cannot be simulated",
)
def test_a_read_only_file_never_stops_training(tmp_path, carbon_warnings):
    path = tmp_path / "l.sqlite3"
    Ledger(path).close()
    path.chmod(0o400)
    tmp_path.chmod(0o500)
    try:
        tracker, summary = _train(path)
    finally:
        tmp_path.chmod(0o700)
    _assert_trained_without_ledger(tracker, summary)
    assert len(carbon_warnings) == 1


# -- the schema migration --------------------------------------------------------------------


def _version_1_file(path: Path) -> None:
    """A ledger as the first schema wrote it: tags and metrics as JSON text."""
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


def test_a_version_1_ledger_is_migrated_on_open(tmp_path):
    path = tmp_path / "v1.sqlite3"
    _version_1_file(path)
    with Ledger(path) as ledger:
        old, older = ledger.run(7), ledger.run(8)
        new_id = record_run(ledger, "new", [1.0])
        by_tag = {g.key: g.runs for g in ledger.totals("tag")}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
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


def test_records_convert_to_plain_dicts(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        record_run(ledger, "a", [1.0], [{"loss": 2.0}], task="t")
        as_dict = ledger.run("a").to_dict()
    assert json.loads(json.dumps(as_dict))["intervals"][0]["metrics"] == {"loss": 2.0}


def test_a_fake_tracker_and_interval_helpers_match_the_ledger_contract(tmp_path):
    """begin_run needs only what a Tracker exposes; add_interval only an Interval."""
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        run_id = ledger.begin_run(fake_tracker("x", None, task="t"))
        ledger.add_interval(run_id, interval(0, 3.6e6), None)
        assert ledger.run(run_id).energy_kwh == pytest.approx(1.5)
