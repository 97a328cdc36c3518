"""Searches in the ledger, from plain Trackers marked as trials: the totals per search (failed
trials included), the best completed trial by an objective in either direction, and
`carbonlog runs --by search` over them."""

from __future__ import annotations

import json
import time

import pytest

from carbonlog.cli import main
from carbonlog.ledger import Ledger
from carbonlog.tracking import Tracker

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}


def trial(path, search: str, number: int, accuracies: list[float], status: str = "completed"):
    """A real Tracker run of one trial: an epoch per accuracy, then `status`."""
    tracker = Tracker(
        intensity=100.0,
        power_w=WATTS,
        ledger=str(path),
        run_info={"search_id": search, "trial": str(number), "trial_params": {"lr": 0.1 * number}},
    ).start()
    for accuracy in accuracies:
        time.sleep(0.01)
        tracker.mark("epoch", metrics={"val_accuracy": accuracy, "val_loss": 1 - accuracy})
    return tracker.stop(status=status)


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    trial(path, "grid", 0, [0.5, 0.6])
    trial(path, "grid", 1, [0.7, 0.95], status="failed")  # its 0.95 is no result
    trial(path, "grid", 2, [0.6, 0.8, 0.7])  # its last value counts: 0.7
    trial(path, "random", 0, [0.9])
    Tracker(intensity=100.0, power_w=WATTS, ledger=str(path)).start().stop()  # no search
    return path


def test_each_search_adds_every_trial_and_picks_the_best_completed_one(ledger):
    with Ledger(ledger) as read:
        grid, random_ = sorted(read.searches(objective="val_accuracy"), key=lambda s: s.search_id)
        runs = read.runs()
    by_search = {s: [r for r in runs if r.search_id == s] for s in ("grid", "random")}
    assert (grid.trials, grid.runs, grid.statuses) == (3, 3, {"completed": 2, "failed": 1})
    assert grid.co2_kg == pytest.approx(sum(r.co2_kg for r in by_search["grid"]), rel=1e-12)
    assert grid.energy_kwh == pytest.approx(sum(r.energy_kwh for r in by_search["grid"]))
    assert (grid.direction, grid.best_trial, grid.best_value) == ("maximize", "2", 0.7)
    trial_2 = next(r for r in by_search["grid"] if r.trial == "2")
    assert grid.best_co2_kg == pytest.approx(trial_2.co2_kg)
    assert (random_.trials, random_.best_trial, random_.best_value) == (1, "0", 0.9)
    assert random_.co2_kg_per_trial == pytest.approx(random_.co2_kg)


def test_a_loss_is_minimized_and_a_missing_objective_is_said(ledger):
    with Ledger(ledger) as read:
        found = {s.search_id: s for s in read.searches(objective="val_loss")}
        unnamed = {s.search_id: s for s in read.searches()}
        missing = {s.search_id: s for s in read.searches(objective="bleu", direction="minimize")}
    assert found["grid"].direction == "minimize" and found["grid"].best_trial == "2"
    assert found["grid"].best_value == pytest.approx(0.3)
    assert unnamed["grid"].best_trial is None and "no objective named" in unnamed["grid"].no_best
    assert missing["grid"].no_best == "no completed trial recorded 'bleu'"


def test_runs_by_search_in_the_terminal_and_as_json(ledger, capsys):
    args = ["runs", "--by", "search", "--ledger", str(ledger)]
    assert main([*args, "--objective", "val_accuracy"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["search", "trials", "statuses"]
    assert "grid: best by val_accuracy (maximize) is trial 2 (0.7)" in " ".join(out.split())
    assert max(map(len, out.splitlines())) <= 80
    assert main([*args, "--objective", "val_accuracy", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["search_id"] for r in rows} == {"grid", "random"}
    assert all(r["co2_kg_per_trial"] == pytest.approx(r["co2_kg"] / r["trials"]) for r in rows)


def test_objective_options_need_by_search(ledger, capsys):
    assert main(["runs", "--ledger", str(ledger), "--objective", "val_loss"]) == 2
    assert "--objective and --direction go with --by search" in capsys.readouterr().err


def test_a_ledger_without_searches_says_so(tmp_path, capsys):
    path = tmp_path / "ledger.sqlite3"
    Tracker(intensity=100.0, power_w=WATTS, ledger=str(path)).start().stop()
    assert main(["runs", "--by", "search", "--ledger", str(path)]) == 0
    assert capsys.readouterr().out == "no run of a search recorded\n"
    assert main(["runs", "--by", "search", "--ledger", str(path), "--task", "sst2"]) == 0
    assert capsys.readouterr().out == "no run of a search matches\n"
