"""Resume from a mid-epoch checkpoint: what the Trainer's logs (TensorBoard, trainer_state.json),
the model card and the ledger say of the run afterwards. Real Trainer runs of a tiny BERT on
the CPU, 5 steps per epoch, a checkpoint every 3 steps (3 and 6 are mid-epoch), the default
ledger under the test's own CARBONLOG_HOME, TensorBoard in one folder for both parts.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("transformers")
yaml = pytest.importorskip("yaml")

from test_transformers import G_PER_KWH, scalars  # noqa: E402
from transformers import Trainer  # noqa: E402
from transformers_ddp_script import POWER_W, Tokens, tiny_bert, training_args  # noqa: E402

from carbonlog.integrations.transformers import STATE_KEY, EmissionsCallback  # noqa: E402
from carbonlog.ledger import Ledger  # noqa: E402
from tests.faults.adapter_fits import hf_interrupt  # noqa: E402

OPTIONS = {"intensity": G_PER_KWH, "verbose": False, "power_w": POWER_W}  # the default ledger
MID_EPOCH = {"save_strategy": "steps", "save_steps": 3, "report_to": ["tensorboard"]}


def ledger_run():
    with Ledger(Path(os.environ["CARBONLOG_HOME"]) / "ledger.sqlite3") as ledger:
        (run,) = ledger.runs()
        return ledger.run(run.id)


def trainer_of(out: Path, callback, extra=()) -> Trainer:
    return Trainer(
        model=tiny_bert(),
        args=training_args(out, **MID_EPOCH),
        train_dataset=Tokens(40),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[callback, *extra],
    )


@pytest.fixture
def tensorboard_dir(tmp_path, monkeypatch):
    folder = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(folder))
    return folder


def test_a_mid_epoch_checkpoint_holds_the_totals_the_ledger_held(tmp_path):
    """The state in checkpoint-6 (epoch 2, step 1 of 5) is the run as of epoch 1's end: the
    interval the ledger had recorded then, not the open epoch's energy, which no record holds
    until the epoch ends (and a crash loses from both alike)."""
    callback = EmissionsCallback(**OPTIONS)
    trainer_of(tmp_path, callback).train()
    states = {
        step: json.loads((tmp_path / f"checkpoint-{step}" / "trainer_state.json").read_text())
        for step in (3, 6, 9, 10)
    }
    carried = {step: state["stateful_callbacks"][STATE_KEY] for step, state in states.items()}
    assert [carried[step]["epochs_done"] for step in (3, 6, 9, 10)] == [0, 1, 1, 2]
    epochs = [iv for iv in ledger_run().intervals if iv.label == "epoch"]
    assert carried[3]["energy_kwh_total"] == 0.0
    assert carried[6]["energy_kwh_total"] == pytest.approx(epochs[0].energy_kwh, rel=1e-12)
    assert carried[9] == carried[6]
    both = epochs[0].energy_kwh + epochs[1].energy_kwh
    assert carried[10]["energy_kwh_total"] == pytest.approx(both, rel=1e-12)


def test_a_fit_left_open_is_closed_when_another_begins(tmp_path):
    """Ctrl-C at step 8, then a new callback resumes from checkpoint-6 in the same process: the
    abandoned fit is closed as the new one begins, so its last interval ends there (not at the
    process's exit, spanning the resumed training), and the completed run stays completed."""
    first = EmissionsCallback(**OPTIONS)
    interrupted = trainer_of(tmp_path, first, extra=[hf_interrupt(8)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    assert ledger_run().status == "running"
    second = EmissionsCallback(**OPTIONS)
    trainer_of(tmp_path, second).train(resume_from_checkpoint=str(tmp_path / "checkpoint-6"))
    assert not first.session.is_measuring
    assert first.session.last_summary.status == "interrupted"
    done = ledger_run()
    del first, interrupted
    gc.collect()  # the first callback's run, had it stayed open, would be closed now
    after = ledger_run()
    assert after.status == done.status == "completed"
    assert [iv.label for iv in after.intervals] == ["epoch", "end", "epoch", "end"]
    assert after.energy_kwh == done.energy_kwh
    tail = after.intervals[1]  # the first fit's: from epoch 1's end to the second fit's start
    assert tail.started_at + tail.duration_s <= after.intervals[2].started_at


def test_logs_ledger_and_card_agree_after_a_mid_epoch_resume(tmp_path, tensorboard_dir):
    """A fit of 2 epochs, then a second resumed from checkpoint-6: the final logged total, the
    model card and the ledger's run count the same energy, the running total never goes back,
    and the ledger's epoch indices go on from the first fit's."""
    trainer_of(tmp_path, EmissionsCallback(**OPTIONS)).train()
    first_final = ledger_run().energy_kwh
    callback = EmissionsCallback(**OPTIONS)
    trainer = trainer_of(tmp_path, callback)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-6"))
    trainer.save_state()
    trainer.create_model_card()
    run = ledger_run()
    saved = json.loads((tmp_path / "trainer_state.json").read_text())
    final = next(e for e in saved["log_history"] if "train_runtime" in e)
    card = yaml.safe_load((tmp_path / "README.md").read_text().split("---\n")[1])
    assert [e["epoch"] for e in saved["log_history"] if "carbon/energy_kwh" in e] == [1.0, 2.0]
    assert final["carbon/energy_kwh_total"] == pytest.approx(run.energy_kwh, rel=1e-9)
    assert card["co2_eq_emissions"]["emissions"] == pytest.approx(run.co2_kg * 1000, rel=1e-9)
    totals = [value for _, value in scalars(tensorboard_dir)["train/carbon/energy_kwh_total"]]
    assert totals == sorted(totals) and totals[-1] > first_final * (1 - 1e-6)
    indices = [iv.index for iv in run.intervals if iv.label == "epoch"]
    assert indices == sorted(set(indices))
