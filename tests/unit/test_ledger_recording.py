"""A tracker's runs in the ledger: what a tracked run leaves there, statuses the tracker decides,
resumed runs, kill -9, and ledgers that cannot be used or written never stopping training."""

from __future__ import annotations

import os
import signal
import stat
import time

import pytest

import carbonlog
from carbonlog.ledger import Ledger, LedgerError
from carbonlog.tracking import Tracker
from carbonlog.units import J_PER_KWH
from tests.unit.ledger_worker import UNUSABLE, WATTS, interval, record_run, worker


def tracked(path, **kwargs) -> Tracker:
    options = {"intensity": 100.0, "power_w": WATTS, "ledger": str(path)}
    options.update(kwargs)
    return Tracker(**options)


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


def test_metrics_reported_after_the_run_ended_are_not_recorded_and_break_nothing(
    tmp_path, carbon_warnings
):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path, run_name="ended").start()
    first = tracker.mark("epoch", {"loss": 0.5})
    tracker.stop()
    tracker.annotate(first, {"eval_accuracy": 0.9})
    assert tracker.ledger is None
    with Ledger(path) as ledger:
        assert ledger.run("ended").intervals[0].metrics == {"loss": 0.5}
    assert carbon_warnings == []


def test_a_tracked_file_and_its_wal_are_readable_by_their_user_only(tmp_path):
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
    tracker = tracked(tmp_path / "l.sqlite3")
    tracker.load_state_dict({**tracker.state_dict(), "run_id": 41})
    tracker.start().stop()
    assert tracker.run_id == 1


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


@pytest.mark.parametrize("make", UNUSABLE, ids=lambda f: f.__name__.strip("_"))
def test_an_unusable_ledger_never_stops_training_and_says_so_once_per_run(
    tmp_path, make, carbon_warnings
):
    """Two runs in one process (a notebook): each is told it is not recorded, once."""
    path = make(tmp_path)
    before = (path.read_bytes(), path.stat().st_mode) if path.is_file() else None
    for _ in range(2):
        tracker, summary = _train(path, epochs=3)
        _assert_trained_without_ledger(tracker, summary, epochs=3)
    said = [r.getMessage() for r in carbon_warnings]
    assert len(said) == 2 and all("ledger is unavailable" in m for m in said), said
    if before is not None:
        assert (path.read_bytes(), path.stat().st_mode) == before  # left as it was


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
    path = tmp_path / "l.sqlite3"
    tracker = tracked(path).start()
    tracker.mark("epoch")
    tracker.ledger._conn.execute("PRAGMA query_only = ON")
    for _ in range(3):
        tracker.mark("epoch")
    summary = tracker.stop()
    assert len(summary.intervals) == 5 and summary.energy_kwh > 0
    with Ledger(path) as ledger:
        run = ledger.run(summary.run_id)
    assert (run.status, run.epochs) == ("running", 1)  # never "completed" with 1 of 4 epochs
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
