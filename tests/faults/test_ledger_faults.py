"""The ledger under faults and hostile input: a second process holding it locked, a full disk,
files planted in a shared CARBONLOG_HOME, another application's database, and text that is not
plain (runs of other PID namespaces and boots: test_ledger_processes.py). Each test trains,
then checks what was recorded and what the user was told, once."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from carbonlog.ledger import Ledger, LedgerBusy, LedgerError
from carbonlog.tracking import Tracker, recorder
from tests.unit.ledger_worker import WATTS, LedgerLock, version_2_file, worker

STALL_BOUND_S = 0.5
"""The longest a start, mark or stop may wait on a locked ledger (the busy timeout was 10 s);
generous for a loaded two-core CI machine."""

EPOCHS = 4


def tracked(path: Path, **kwargs) -> Tracker:
    return Tracker(intensity=100.0, power_w=WATTS, ledger=str(path), **kwargs)


def timed(call, *args):
    """`call(*args)` and the seconds it took."""
    began = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - began


def existing_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    return path


def stored(path: Path, run_id: int | None):
    with Ledger(path) as ledger:
        return ledger.run(run_id) if run_id is not None else None, ledger.runs()


def said(carbon_warnings) -> list[str]:
    return [record.getMessage() for record in carbon_warnings]


def assert_every_epoch_in_order(run, summary) -> None:
    assert [i.label for i in run.intervals] == ["epoch"] * EPOCHS + ["end"]
    assert [i.metrics["epoch"] for i in run.intervals[:EPOCHS]] == list(range(EPOCHS))
    assert [i.index for i in run.intervals] == list(range(EPOCHS + 1))
    assert run.energy_kwh == pytest.approx(summary.energy_kwh, rel=1e-12)
    assert run.co2_kg == pytest.approx(summary.co2_kg, rel=1e-12)


# -- a second process holding the ledger locked -------------------------------------------------


def test_a_lock_held_from_before_the_fit_delays_the_run_and_loses_none_of_it(
    tmp_path, carbon_warnings
):
    path = existing_ledger(tmp_path)
    waits = []
    with LedgerLock(path) as lock:
        tracker, took = timed(tracked(path, run_name="locked out").start)
        waits.append(took)
        for epoch in range(EPOCHS):
            if epoch == 2:
                lock.release()
            waits.append(timed(tracker.mark, "epoch", {"epoch": epoch})[1])
    summary, took = timed(tracker.stop)
    waits.append(took)

    assert max(waits) < STALL_BOUND_S, waits
    run, runs = stored(path, summary.run_id)
    assert [r.id for r in runs] == [run.id] and run.name == "locked out"
    assert run.status == "completed" and run.stop_reason is None
    assert run.started_at < run.intervals[1].started_at  # when it began, not when it was written
    assert_every_epoch_in_order(run, summary)
    assert said(carbon_warnings) == []  # nothing was lost, so nothing is said


def test_a_lock_taken_mid_run_keeps_the_blocked_epochs_in_order(tmp_path, carbon_warnings):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path).start()
    lock = LedgerLock(path)
    waits = []
    for epoch in range(EPOCHS):
        if epoch == 1:
            lock.hold()
        if epoch == 3:
            lock.release()
        waits.append(timed(tracker.mark, "epoch", {"epoch": epoch})[1])
    summary = tracker.stop()

    assert max(waits) < STALL_BOUND_S, waits
    run, _ = stored(path, summary.run_id)
    assert run.status == "completed"
    assert_every_epoch_in_order(run, summary)
    assert said(carbon_warnings) == []


def test_a_lock_held_past_the_end_leaves_the_run_not_completed_and_says_so_once(
    tmp_path, carbon_warnings
):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path).start()
    tracker.mark("epoch", {"epoch": 0})
    with LedgerLock(path):
        for epoch in range(1, EPOCHS):
            tracker.mark("epoch", {"epoch": epoch})
        summary, took = timed(tracker.stop)

    assert took < STALL_BOUND_S
    assert len(summary.intervals) == EPOCHS + 1
    run, _ = stored(path, summary.run_id)
    assert run.status == "running" and run.epochs == 1  # never "completed" with 1 of 4 epochs
    (message,) = said(carbon_warnings)
    assert f"run {run.id}" in message and "locked" in message


def test_a_ledger_locked_for_the_whole_run_records_nothing_and_says_so_once_per_run(
    tmp_path, carbon_warnings
):
    """Two runs in one process (a notebook): the second lost run is told too."""
    path = existing_ledger(tmp_path)
    with LedgerLock(path):
        for _ in range(2):
            tracker = tracked(path).start()
            for epoch in range(EPOCHS):
                tracker.mark("epoch", {"epoch": epoch})
            summary = tracker.stop()
            assert summary.run_id is None and len(summary.intervals) == EPOCHS + 1
    assert stored(path, None)[1] == []
    messages = said(carbon_warnings)
    assert len(messages) == 2, messages
    assert all("not recorded" in m and "locked" in m for m in messages)


def test_more_blocked_writes_than_the_queue_holds_store_the_run_incomplete(
    tmp_path, monkeypatch, carbon_warnings
):
    monkeypatch.setattr(recorder, "QUEUE_MAX", 2)
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path).start()
    with LedgerLock(path):
        for epoch in range(EPOCHS):
            tracker.mark("epoch", {"epoch": epoch})
    summary = tracker.stop()

    run, _ = stored(path, summary.run_id)
    assert run.status == "incomplete"
    assert "2 writes" in run.stop_reason
    assert [i.metrics.get("epoch") for i in run.intervals] == [0, 1, None]  # the end kept
    assert run.energy_kwh < summary.energy_kwh
    (message,) = said(carbon_warnings)
    assert "lost" in message


def test_an_older_ledger_locked_while_it_needs_migrating_is_migrated_when_the_lock_frees(
    tmp_path, carbon_warnings
):
    path = tmp_path / "ledger.sqlite3"
    version_2_file(path)
    with LedgerLock(path) as lock:
        tracker, took = timed(tracked(path).start)
        assert took < STALL_BOUND_S
        for epoch in range(EPOCHS):
            if epoch == 1:
                lock.release()
            tracker.mark("epoch", {"epoch": epoch})
    summary = tracker.stop()
    run, runs = stored(path, summary.run_id)
    assert run.status == "completed"
    assert {r.name: r.status for r in runs if r.id != run.id} == {
        "v2 run": "completed",
        "v2 open": "running",  # its process's namespace is unknown: left alone
    }
    assert_every_epoch_in_order(run, summary)
    assert said(carbon_warnings) == []


def test_readers_wait_for_a_lock_that_the_training_loop_gives_up_on(tmp_path):
    """Opening a ledger that needs migrating takes the write lock: the recorder's connection
    gives up at once (and retries at the next mark), a reader's (the CLI's) waits for it."""
    path = tmp_path / "ledger.sqlite3"
    version_2_file(path)
    with LedgerLock(path) as lock:
        with pytest.raises(LedgerBusy, match="database is locked"):
            Ledger(path, busy_timeout_s=recorder.WRITE_TIMEOUT_S)
        releaser = threading.Timer(0.3, lock.release)
        releaser.start()
        with Ledger(path) as reader:
            assert {r.name for r in reader.runs()} == {"v2 run", "v2 open"}
        releaser.join()


# -- a full disk ----------------------------------------------------------------------------


def _fill_the_database(tracker: Tracker) -> None:
    """SQLite's own size limit on the tracker's connection: "database or disk is full"."""
    conn = tracker.ledger._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _free_the_database(tracker: Tracker) -> None:
    tracker.ledger._conn.execute("PRAGMA max_page_count = 1073741823")


BIG = {f"metric_{k:03d}_{'x' * 40}": float(k) for k in range(100)}
"""Metrics large enough that an interval needs a page of its own."""


def test_a_disk_full_mid_run_keeps_the_epochs_until_space_frees(tmp_path, carbon_warnings):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path).start()
    for epoch in range(EPOCHS):
        if epoch == 1:
            _fill_the_database(tracker)
        if epoch == 3:
            _free_the_database(tracker)
        tracker.mark("epoch", {"epoch": epoch, **BIG})
    summary = tracker.stop()
    run, _ = stored(path, summary.run_id)
    assert run.status == "completed"
    assert_every_epoch_in_order(run, summary)
    assert said(carbon_warnings) == []


def test_a_disk_that_stays_full_stores_the_run_incomplete_and_says_so_once(
    tmp_path, carbon_warnings
):
    path = tmp_path / "ledger.sqlite3"
    tracker = tracked(path).start()
    tracker.mark("epoch", {"epoch": 0, **BIG})
    _fill_the_database(tracker)
    for epoch in range(1, EPOCHS):
        tracker.mark("epoch", {"epoch": epoch, **BIG})
    summary = tracker.stop()
    run, _ = stored(path, summary.run_id)
    assert run.status == "incomplete" and run.epochs == 1
    assert f"{EPOCHS} writes" in run.stop_reason  # three epochs and the end interval
    (message,) = said(carbon_warnings)
    assert "full" in message and f"run {run.id}" in message


def _mount_namespace_available() -> str | None:
    """Why a tmpfs cannot be mounted in a private mount namespace here, or None if it can."""
    if os.name == "nt" or shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return None if probe.returncode == 0 else "unshare --mount is not permitted"


@pytest.mark.slow
@pytest.mark.skipif(_mount_namespace_available() is not None, reason="needs a mount namespace")
@pytest.mark.parametrize(
    ("full_until", "status", "epochs"), [(3, "completed", 4), (9, "running", 1)]
)
def test_a_real_full_filesystem_never_stops_training(tmp_path, full_until, status, epochs):
    """A 512 KiB tmpfs filled from epoch 1: freed before epoch 3, every epoch is stored; never
    freed, not even the run's end fits, so it stays "running" (never "completed")."""
    proc = worker(
        "diskfull", tmp_path, 1, full_until, prefix=["unshare", "--mount", "--propagation=private"]
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["summary_intervals"] == EPOCHS + 1
    run = result["run"]
    assert (run["status"], run["epochs"]) == (status, epochs)
    assert [i["metrics"]["epoch"] for i in run["intervals"][:epochs]] == list(range(epochs))
    warnings = [line for line in err.splitlines() if line.startswith("carbonlog:")]
    if status == "completed":
        assert warnings == [], err
    else:
        (message,) = warnings
        assert f"run {run['id']}" in message and "full" in message and "running" in message


# -- files planted in a shared CARBONLOG_HOME -------------------------------------------------


def _shared_home(tmp_path: Path, monkeypatch) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("CARBONLOG_HOME", str(shared))
    return shared


@pytest.mark.parametrize("planted", ["ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"])
def test_a_symlink_planted_in_a_shared_home_is_refused_and_its_target_untouched(
    tmp_path, monkeypatch, carbon_warnings, planted
):
    shared = _shared_home(tmp_path, monkeypatch)
    victim = tmp_path / "victim"
    victim.write_bytes(b"")  # empty: SQLite would happily make it a database
    victim.chmod(0o644)
    (shared / planted).symlink_to(victim)

    tracker = Tracker(intensity=100.0, power_w=WATTS).start()
    tracker.mark("epoch")
    summary = tracker.stop()

    assert len(summary.intervals) == 2 and tracker.ledger is None
    assert victim.read_bytes() == b"" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    (message,) = said(carbon_warnings)
    assert "symbolic link" in message and planted in message
    with pytest.raises(LedgerError, match="symbolic link"):
        Ledger(shared / "ledger.sqlite3")


def test_a_ledger_owned_by_another_user_is_refused(tmp_path, monkeypatch, carbon_warnings):
    path = existing_ledger(tmp_path)
    before = path.read_bytes()
    mine = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: mine + 1)  # as if another user ran it
    tracker = tracked(path).start()
    tracker.mark("epoch")
    tracker.stop()
    assert tracker.ledger is None and path.read_bytes() == before
    (message,) = said(carbon_warnings)
    assert "another user" in message
    with pytest.raises(LedgerError, match="another user"):
        Ledger(path)


def test_a_symlink_swapped_in_while_the_ledger_opens_is_refused(tmp_path, monkeypatch):
    """The check and SQLite's open are two steps: a swap between them is caught after."""
    path = existing_ledger(tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    connect = sqlite3.connect

    def swap_then_connect(*args, **kwargs):
        path.unlink()
        path.symlink_to(victim)
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", swap_then_connect)
    with pytest.raises(LedgerError, match="symbolic link"):
        Ledger(path)
    assert victim.read_bytes() == b""


# -- another application's database ------------------------------------------------------------


@pytest.mark.parametrize(("user_version", "application_id"), [(1, 0), (2, 0), (3, 0), (3, 7)])
def test_another_apps_database_is_never_modified(tmp_path, user_version, application_id):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, score REAL)")
        conn.execute("INSERT INTO runs (score) VALUES (0.5)")
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.execute(f"PRAGMA application_id = {application_id}")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="not a carbonlog ledger"):
        Ledger(path)
    assert path.read_bytes() == before  # not switched to WAL, not migrated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite3"]


# -- text that is not plain --------------------------------------------------------------------


def test_a_tag_with_a_newline_reads_back_as_one_tag_and_forges_no_group(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    tags = ["sweep=lr\nforged", "bell\x07", "esc\x1b[2J"]
    tracked(path, run_name="tagged", tags=tags).start().stop()
    with Ledger(path) as ledger:
        run = ledger.run("tagged")
        groups = {g.key: g.runs for g in ledger.totals("tag")}
        found = [r.name for r in ledger.runs(tag="sweep=lr\nforged")]
    assert run.tags == sorted(["sweep=lr\\nforged", "bell\\x07", "esc\\x1b[2J"])
    assert groups == dict.fromkeys(run.tags, 1)
    assert "forged" not in groups and found == ["tagged"]


def test_a_run_name_that_is_not_utf8_is_recorded_and_found_again(tmp_path, carbon_warnings):
    path = tmp_path / "ledger.sqlite3"
    name = os.fsdecode(b"run-\xff")  # "run-\udcff": an undecodable byte, as a file name gives
    tracker = tracked(path, run_name=name, tags=[name], run_info={"task": name}).start()
    tracker.mark(os.fsdecode(b"ep\xfe"), {os.fsdecode(b"acc\xfd"): 0.5})
    summary = tracker.stop()
    with Ledger(path) as ledger:
        run = ledger.run(name)
        by_task = [r.id for r in ledger.runs(task=name, tag=name)]
    assert run is not None and run.id == summary.run_id and by_task == [run.id]
    assert (run.name, run.task, run.tags) == ("run-\\udcff", "run-\\udcff", ["run-\\udcff"])
    assert run.status == "completed"
    assert [i.label for i in run.intervals] == ["ep\\udcfe", "end"]
    assert run.intervals[0].metrics == {"acc\\udcfd": 0.5}
    assert said(carbon_warnings) == []
