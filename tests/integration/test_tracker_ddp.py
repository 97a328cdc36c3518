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


def run_ranks(tmp_path: Path, mode: str = "steady") -> list[str]:
    """Both ranks of tracker_ddp_script.py; their output, once both have exited."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tmp_path), str(rank), "2", str(tmp_path / "i"), mode],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    return outputs


@pytest.mark.slow
def test_two_ranks_share_one_sum_and_decide_alike(tmp_path):
    outputs = run_ranks(tmp_path)
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))

    for mine, theirs in zip(zero["marks"], one["marks"], strict=True):
        assert mine == theirs  # kg, totals, intensity and flags alike on both ranks
        assert mine["calls"] == 1  # one all-reduce per mark, none for the peek
        assert mine["intensity"] == 100.0  # global rank zero's figure, not rank 1's 900
        assert mine["estimated"] == ["gpu", "cpu", "ram"]  # constant power, and rank 1's GPU
    assert set(zero["sizes"]) == {13}  # one vector of 13 float64 per mark
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
