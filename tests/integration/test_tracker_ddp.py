"""The core Tracker in two gloo processes: one small float64 sum per mark, none per peek;
every figure that drives a decision identical on both ranks; rank zero's intensity; a rank
that cannot measure its GPU flags the GPU energy and is said once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from carbonlog.ledger import Ledger

SCRIPT = Path(__file__).with_name("tracker_ddp_script.py")
REPO = Path(__file__).resolve().parents[2]


def run_ranks(tmp_path: Path, mode: str = "steady", world: int = 2) -> list[str]:
    """Every rank of tracker_ddp_script.py; their output, once all have exited."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    procs = [
        subprocess.Popen(
            [sys.executable, SCRIPT, tmp_path, str(rank), str(world), tmp_path / "i", mode],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(world)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * world, outputs
    return outputs


@pytest.mark.slow
def test_two_ranks_share_one_sum_and_decide_alike(tmp_path):
    outputs = run_ranks(tmp_path)
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))

    for mine, theirs in zip(zero["marks"], one["marks"], strict=True):
        mine.pop("duration_s"), theirs.pop("duration_s")  # each rank's own clock
        assert mine == theirs  # kg, totals, intensity and flags alike on both ranks
        assert mine["calls"] == 1  # one all-reduce per mark, none for the peek
        assert mine["intensity"] == 100.0  # global rank zero's figure, not rank 1's 900
        assert mine["estimated"] == ["gpu", "cpu", "ram"]  # constant power, and rank 1's GPU
    assert set(zero["sizes"]) == {28}  # one vector of 28 float64 per mark
    assert zero["co2_kg"] == one["co2_kg"]

    warned = [line for line in outputs[0].splitlines() if "could not be measured" in line]
    assert len(warned) == 1 and "gpu energy of 1 of 2 processes" in warned[0]
    assert not any("could not be measured" in line for line in outputs[1].splitlines())
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        run = ledger.run(zero["run_id"])
    assert run.co2_kg == pytest.approx(zero["co2_kg"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["die", "stall"])
def test_a_rank_that_dies_or_stalls_never_hangs_the_others(tmp_path, mode):
    outputs = run_ranks(tmp_path, mode)
    zero = json.loads((tmp_path / "rank0.json").read_text())
    assert len(zero["marks"]) == 3  # rank 0 trained on
    assert [m["calls"] for m in zero["marks"]] == [1, 1, 0]  # one failed sum, then none
    said = [line for line in outputs[0].splitlines() if "summing over processes failed" in line]
    assert len(said) == 1 and "(rank 0)" in said[0]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        run = ledger.run(zero["run_id"])
    assert run.status == "incomplete"
    assert "the sum over processes failed at interval 1" in run.stop_reason


@pytest.mark.slow
def test_four_ranks_on_two_nodes_count_each_gpu_once_and_each_host_once(tmp_path):
    run_ranks(tmp_path, "nodes", world=4)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    seconds = [[m.pop("duration_s") for m in r["marks"]] for r in ranks]  # each rank's clock
    assert all(r["marks"] == ranks[0]["marks"] for r in ranks)  # the figures alike everywhere
    for epoch, mark in enumerate(ranks[0]["marks"]):
        own = [s[epoch] for s in seconds]
        # GPUs of 100, 200, 300 and 400 W, one per rank; host (10 W CPU, 1 W RAM) per node
        assert mark["gpu_j"] == pytest.approx(sum(100.0 * (r + 1) * own[r] for r in range(4)), 1e-3)
        assert mark["cpu_j"] == pytest.approx(10.0 * (own[0] + own[2]), rel=1e-3)  # local rank 0s
        assert mark["ram_j"] == pytest.approx(1.0 * (own[0] + own[2]), rel=1e-3)
        assert mark["calls"] == 1 and mark["intensity"] == 100.0
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        assert len(ledger.runs()) == 1  # one run, written by global rank zero
