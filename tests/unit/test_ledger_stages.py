"""A standalone validate, test, predict or evaluate is grouped with the fit it follows: the ledger
links its run to that fit when it begins, `carbonlog runs` lists it under the fit with its stage
and the time it started, and `runs --json` carries the link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from carbonlog.cli.views import NESTED, runs_table
from carbonlog.ledger import Ledger
from carbonlog.tracking import Tracker
from tests.unit.ledger_worker import SRC, record_run

STAGES = ("validate", "test", "predict", "evaluate")


def fit_in_another_process(path, name: str | None) -> int:
    """A fit run begun and ended by another process (of this host); its id."""
    code = (
        "import sys; from carbonlog.ledger import Ledger, RunInfo\n"
        "with Ledger(sys.argv[1]) as ledger:\n"
        "    run = ledger.begin_run(RunInfo(name=sys.argv[2] or None, stage='fit'))\n"
        "    ledger.end_run(run, 'completed', None, 1.0)\n"
        "print(run)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), name or ""],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_after_a_fit_in_the_same_process_is_linked_to_it(tmp_path, stage):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        record_run(ledger, "bert", [1.0], stage="fit")
        fit = record_run(ledger, "bert", [1.0, 1.0], stage="fit")
        other = record_run(ledger, "gpt", [1.0], stage="fit")  # another model, later
        follows = record_run(ledger, "bert", [], stage=stage)
        unnamed_fit = record_run(ledger, None, [1.0], stage="fit")
        unnamed = record_run(ledger, None, [], stage=stage)
        runs = {run.id: run for run in ledger.runs()}
    assert runs[follows].fit_run_id == fit  # the newest fit of its name, not the newest fit
    assert runs[unnamed].fit_run_id == unnamed_fit
    assert {runs[r].fit_run_id for r in (fit, other, unnamed_fit)} == {None}  # fits follow none


def test_a_stage_follows_a_fit_of_its_name_from_another_process_of_this_host(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    named = fit_in_another_process(path, "bert")
    unnamed = fit_in_another_process(path, None)
    with Ledger(path) as ledger:
        test = record_run(ledger, "bert", [], stage="test")
        alone = record_run(ledger, None, [], stage="test")  # no name: only its own process's fit
        stranger = record_run(ledger, "gpt", [], stage="test")
        no_stage = record_run(ledger, "bert", [])  # a plain Tracker run: no stage, no link
        runs = {run.id: run for run in ledger.runs()}
        with ledger._lock:
            ledger._conn.execute("UPDATE runs SET host = 'elsewhere' WHERE id = ?", (named,))
        moved = record_run(ledger, "bert", [], stage="predict")
        assert ledger.run(moved).fit_run_id is None  # a fit of that name on another host
    assert runs[test].fit_run_id == named and unnamed != named
    assert runs[alone].fit_run_id is None
    assert runs[stranger].fit_run_id is None and runs[no_stage].fit_run_id is None


def tracked(path, name: str, stage: str, epochs: int) -> int:
    """A real Tracker run of `stage` with `epochs` epochs; its id."""
    tracker = Tracker(
        location="FR",
        power_w={"cpu": 10.0},
        gpus=None,
        ledger=str(path),
        run_name=name,
        run_info={"framework": "lightning", "stage": stage, "task": "sst2", "model": "bert"},
    ).start()
    for _ in range(epochs):
        time.sleep(0.005)
        tracker.mark("epoch")
    return tracker.stop().run_id


@pytest.fixture
def stages(tmp_path):
    """fit (1), validate (2), test (3) of `bert`, then fit (4) and predict (5) of `gpt`."""
    path = tmp_path / "ledger.sqlite3"
    ids = [tracked(path, "bert", "fit", 2), tracked(path, "bert", "validate", 0)]
    ids += [tracked(path, "bert", "test", 0), tracked(path, "gpt", "fit", 1)]
    ids.append(tracked(path, "gpt", "predict", 0))
    with Ledger(path) as ledger:
        yield ledger, ids


def test_runs_lists_each_stage_under_its_fit_with_its_stage_and_time(stages):
    ledger, _ = stages
    found = ledger.runs()
    lines = runs_table(found, width=120).splitlines()
    header = lines[0].split()
    assert header[:3] == ["id", "name", "stage"] and header[-1] == "started"
    assert [line.split()[:3] for line in lines[2:]] == [
        ["4", "gpt", "fit"],
        ["5", "gpt", "predict"],
        ["1", "bert", "fit"],
        ["2", "bert", "validate"],
        ["3", "bert", "test"],
    ]
    stage_at = lines[0].index("stage")
    assert lines[2][stage_at:].startswith("fit ") and lines[3][stage_at:].startswith(NESTED + "p")
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(found[0].started_at))
    assert lines[2].endswith(started)
    epochs = {line.split()[0]: line.split()[6] for line in lines[2:]}
    assert epochs == {"4": "1", "5": "-", "1": "2", "2": "-", "3": "-"}  # a stage has no epochs


def test_a_stage_whose_fit_is_not_listed_names_it(stages):
    ledger, _ = stages
    lines = runs_table(ledger.runs(limit=3), width=120).splitlines()  # runs 5, 4 and 3
    assert [line.split()[:4] for line in lines[2:]] == [
        ["4", "gpt", "fit", "sst2"],
        ["5", "gpt", "predict", "sst2"],
        ["3", "bert", "test", "of"],
    ]
    assert "test of 1" in lines[4]


def test_the_listing_fits_80_columns_leaving_out_model_then_task(stages):
    ledger, _ = stages
    wide = runs_table(ledger.runs(), width=200).splitlines()
    assert "model" in wide[0] and "task" in wide[0]
    narrow = runs_table(ledger.runs(), width=80).splitlines()
    assert max(map(len, narrow)) <= 80
    assert "stage" in narrow[0] and "started" in narrow[0]


def test_runs_json_carries_the_link_and_every_field(stages):
    ledger, ids = stages
    done = subprocess.run(
        [sys.executable, "-m", "carbonlog.cli", "--ledger", str(ledger.path), "runs", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
        check=True,
    )
    listed = {run["id"]: run for run in json.loads(done.stdout)}
    assert {i: listed[i]["fit_run_id"] for i in ids} == {1: None, 2: 1, 3: 1, 4: None, 5: 4}
    assert set(listed[2]) == set(ledger.run(2, intervals=False).to_dict())
    assert listed[2]["stage"] == "validate" and listed[2]["epochs"] == 0
