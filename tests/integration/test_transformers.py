"""Transformers adapter: real Trainer runs of a tiny BERT built from a config, on the CPU.

Constant power is forced (power_w), so every interval's energy is watts x seconds and the
figures can be checked exactly; the TensorBoard event file, trainer_state.json and the
model card are read back from disk.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")

import torch  # noqa: E402
from transformers import BertForSequenceClassification as Bert  # noqa: E402
from transformers import Trainer, TrainerCallback  # noqa: E402
from transformers.integrations import TensorBoardCallback  # noqa: E402
from transformers.trainer_callback import DefaultFlowCallback  # noqa: E402
from transformers_ddp_script import POWER_W, Tokens, tiny_bert, training_args  # noqa: E402

from carbonlog.integrations.transformers import (  # noqa: E402
    STATE_KEY,
    EmissionsCallback,
    detect_model,
    inference_prefix,
)
from carbonlog.metrics import KEYS  # noqa: E402
from carbonlog.report.model_card import (  # noqa: E402
    add_co2_to_model_card,
    geographical_location,
    hardware_used,
)

J_PER_KWH = 3.6e6
G_PER_KWH = 50.0
HOST_W = POWER_W["gpu"] + POWER_W["cpu"] + POWER_W["ram"]  # one process: its GPU and the host
OPTIONS = {"intensity": G_PER_KWH, "ledger": False, "verbose": False, "power_w": POWER_W}
SCRIPT = Path(__file__).with_name("transformers_ddp_script.py")
# Pieces leave out the instants between reading a piece and reading the epoch edge (or the
# end) right after it: microseconds each; 50 ms of the forced power bounds them all.
LEFT_OUT_J = HOST_W * 0.05


class Recorder(TrainerCallback):
    """Every logs dict as a reporter sees it (listed after EmissionsCallback by default)."""

    def __init__(self):
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append({**logs, "step": state.global_step})


def train(out, callback, model=None, resume=None, **args):
    """A Trainer run of 40 examples (5 steps per epoch), evaluated every epoch."""
    recorder = Recorder()
    trainer = Trainer(
        model=model or tiny_bert(),
        args=training_args(out, **args),
        train_dataset=Tokens(40),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[callback, recorder],
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer, recorder


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files under `log_dir`: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for run in sorted({p.parent for p in log_dir.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(run))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return found


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """Two epochs reported to TensorBoard; then a model card, an evaluate() and a predict()."""
    out = tmp_path_factory.mktemp("tb")
    callback = EmissionsCallback(**OPTIONS)
    trainer, recorder = train(out, callback, report_to=["tensorboard"])
    trainer.save_state()
    trainer.create_model_card()
    evaluated = trainer.evaluate()
    predicted = trainer.predict(Tokens(8, seed=2)).metrics
    return out, trainer, callback, recorder, evaluated, predicted


def test_callback_moves_ahead_of_the_reporters(tensorboard_run):
    _, trainer, callback, *_ = tensorboard_run
    order = trainer.callback_handler.callbacks
    assert isinstance(order[0], DefaultFlowCallback)
    assert order[1] is callback
    assert any(isinstance(cb, TensorBoardCallback) for cb in order[2:])


def test_tensorboard_holds_carbon_scalars_per_epoch(tensorboard_run):
    out, trainer, callback, *_ = tensorboard_run
    found = scalars(out)
    epochs = [e for e in trainer.state.log_history if "carbon/energy_kwh" in e]
    assert [e["step"] for e in epochs] == [5, 10]
    for name in KEYS:
        tag = f"train/carbon/{name}"
        assert tag in found, tag
    per_epoch = found["train/carbon/energy_kwh"]
    assert [step for step, _ in per_epoch] == [5, 10]
    for (_, logged), entry in zip(per_epoch, epochs, strict=True):
        assert logged == pytest.approx(entry["carbon/energy_kwh"], rel=1e-6)  # float32 in TB
    assert {step for step, _ in found["train/carbon/step/energy_kwh"]} == {2, 4, 5, 6, 8, 10}
    # the step values and evaluations reach the reporter only because the callback moved
    assert [step for step, _ in found["eval/carbon/energy_kwh"]][:2] == [5, 10]


def test_epoch_figures_are_watts_times_seconds(tensorboard_run):
    _, trainer, callback, *_ = tensorboard_run
    epochs = [e for e in trainer.state.log_history if "carbon/energy_kwh" in e]
    for entry in epochs:
        joules = entry["carbon/energy_kwh"] * J_PER_KWH
        assert joules == pytest.approx(HOST_W * entry["carbon/duration_s"], rel=1e-3)
        assert entry["carbon/co2_kg"] == pytest.approx(
            entry["carbon/energy_kwh"] * G_PER_KWH / 1000, rel=1e-12
        )
        assert entry["carbon/power_w"] == pytest.approx(HOST_W, rel=1e-3)
        assert entry["carbon/gpu_kwh"] > entry["carbon/cpu_kwh"] > entry["carbon/ram_kwh"] > 0
    assert epochs[1]["carbon/energy_kwh_total"] == pytest.approx(
        epochs[0]["carbon/energy_kwh"] + epochs[1]["carbon/energy_kwh"], rel=1e-12
    )
    assert "carbon/forecast_co2_kg" in epochs[0]


def test_logged_pieces_add_up_to_the_total(tensorboard_run):
    """Step pieces and evaluation pieces tile the run: their sum is the final total."""
    _, _, callback, recorder, *_ = tensorboard_run
    end = next(i for i, logs in enumerate(recorder.logs) if "train_runtime" in logs)
    training, final = recorder.logs[:end], recorder.logs[end]
    pieces = [logs.get("carbon/step/energy_kwh", 0.0) for logs in recorder.logs[: end + 1]]
    pieces += [logs.get("eval_carbon/energy_kwh", 0.0) for logs in training]
    assert final["carbon/energy_kwh_total"] == pytest.approx(callback.summary.energy_kwh)
    assert 0 <= (final["carbon/energy_kwh_total"] - sum(pieces)) * J_PER_KWH < LEFT_OUT_J
    # each training log carries the energy since the previous log, at its own step; so does
    # each epoch end (5, 10), even right after a log of the same step
    steps = [logs["step"] for logs in training if "carbon/step/energy_kwh" in logs]
    assert steps == [2, 4, 5, 6, 8, 10, 10]


def test_trainer_state_json_keeps_the_figures(tensorboard_run):
    out, *_ = tensorboard_run
    saved = json.loads((out / "trainer_state.json").read_text())
    epochs = [e for e in saved["log_history"] if "carbon/energy_kwh" in e]
    assert [e["epoch"] for e in epochs] == [1.0, 2.0]
    final = next(e for e in saved["log_history"] if "train_runtime" in e)
    assert final["carbon/co2_kg_total"] > 0
    checkpoint = json.loads((out / "checkpoint-10" / "trainer_state.json").read_text())
    assert checkpoint["stateful_callbacks"][STATE_KEY]["epochs_done"] == 2
    assert [e["step"] for e in checkpoint["log_history"] if "carbon/energy_kwh" in e] == [5, 10]
    # evaluation energy stays out of log_history: the card's results table keeps its columns
    assert not any(k.startswith("eval_carbon/") for e in saved["log_history"] for k in e)


def test_model_card_carries_co2_eq_emissions_in_grams(tensorboard_run):
    out, trainer, callback, *_ = tensorboard_run
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    co2 = front["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(callback.summary.co2_kg * 1000, rel=1e-12)
    final = next(e for e in trainer.state.log_history if "train_runtime" in e)
    assert co2["emissions"] == pytest.approx(final["carbon/co2_kg_total"] * 1000, rel=1e-12)
    assert co2["source"] == "carbonlog"
    assert co2["training_type"] == "pre-training"
    assert co2["hardware_used"] == "1 x constant power (power_w)"
    assert "geographical_location" not in co2  # a user-supplied intensity names no place
    assert front["library_name"] == "transformers"  # the Trainer's own metadata is kept
    assert "generated_from_trainer" in front["tags"]
    assert "# " in text.split("---\n", 2)[2]  # and the card's body


def test_evaluate_and_predict_log_their_own_energy(tensorboard_run):
    out, trainer, callback, _, evaluated, predicted = tensorboard_run
    for metrics_, prefix in ((evaluated, "eval_carbon/"), (predicted, "test_carbon/")):
        assert metrics_[prefix + "energy_kwh"] > 0
        assert metrics_[prefix + "energy_kwh_total"] == metrics_[prefix + "energy_kwh"]
        assert metrics_[prefix + "co2_kg"] == pytest.approx(
            metrics_[prefix + "energy_kwh"] * G_PER_KWH / 1000
        )
    # the standalone evaluate reached TensorBoard too, after training's two
    assert len(scalars(out)["eval/carbon/energy_kwh"]) == 3


def test_push_to_hub_uploads_the_card_with_co2(tensorboard_run, monkeypatch):
    """push_to_hub() writes the card through create_model_card; the upload itself is faked."""
    import transformers.trainer

    out, trainer, callback, *_ = tensorboard_run
    uploaded = {}

    class Hub:
        def upload_folder(self, folder_path, **kwargs):
            uploaded["card"] = (Path(folder_path) / "README.md").read_text()

    monkeypatch.setattr(transformers.trainer, "hf_api", Hub)
    monkeypatch.setattr(trainer, "hub_model_id", "someone/tiny-bert")
    trainer.push_to_hub()
    front = yaml.safe_load(uploaded["card"].split("---\n")[1])
    assert front["co2_eq_emissions"] == callback.co2_eq_emissions


@pytest.mark.parametrize(
    "schedule",
    [
        {"eval_strategy": "steps", "eval_steps": 3, "logging_steps": 2},
        {"logging_strategy": "no", "eval_strategy": "no"},
        {"logging_strategy": "epoch"},
    ],
    ids=["eval-between-logs", "no-logs", "epoch-logs"],
)
def test_pieces_tile_the_run_whatever_the_schedule(tmp_path, schedule):
    callback = EmissionsCallback(**OPTIONS)
    trainer, recorder = train(tmp_path, callback, save_strategy="no", **schedule)
    final = next(i for i, logs in enumerate(recorder.logs) if "train_runtime" in logs)
    pieces = [
        logs.get("carbon/step/energy_kwh", 0.0) + logs.get("eval_carbon/energy_kwh", 0.0)
        for logs in recorder.logs[: final + 1]
    ]
    assert 0 <= (callback.summary.energy_kwh - sum(pieces)) * J_PER_KWH < LEFT_OUT_J
    epochs = [e["step"] for e in trainer.state.log_history if "carbon/energy_kwh" in e]
    assert epochs == [5, 10]
    if "eval_steps" in schedule:  # the training up to the evaluation's start, then the eval
        at_3 = [
            sorted(k for k in logs if "carbon" in k)[0]
            for logs in recorder.logs
            if logs["step"] == 3
        ]
        assert at_3 == ["carbon/step/co2_kg", "eval_carbon/co2_kg"]


def test_pretrained_detection(tmp_path):
    scratch = tiny_bert()
    assert detect_model(scratch) == {"model": "BertForSequenceClassification", "pretrained": False}
    scratch.save_pretrained(tmp_path / "base")
    loaded = Bert.from_pretrained(tmp_path / "base")
    found = detect_model(loaded)
    assert found["pretrained"] is True
    assert found["base_model"] == str(tmp_path / "base")
    assert detect_model(torch.nn.DataParallel(loaded)) == found  # wrappers are looked through

    class Peft(torch.nn.Module):  # the PEFT interface: get_base_model()
        def __init__(self, model):
            super().__init__()
            self.inner = model

        def get_base_model(self):
            return self.inner

    assert detect_model(Peft(loaded)) == found


def test_fine_tuning_and_explicit_pretrained_in_the_card(tmp_path):
    tiny_bert().save_pretrained(tmp_path / "base")
    fine = EmissionsCallback(**OPTIONS)
    train(tmp_path / "a", fine, model=Bert.from_pretrained(tmp_path / "base"), max_steps=2)
    assert fine.co2_eq_emissions["training_type"] == "fine-tuning"
    declared = EmissionsCallback(pretrained=False, **OPTIONS)
    train(tmp_path / "b", declared, model=Bert.from_pretrained(tmp_path / "base"), max_steps=2)
    assert declared.co2_eq_emissions["training_type"] == "pre-training"


def test_resume_from_checkpoint_continues_the_totals(tmp_path):
    first = EmissionsCallback(**OPTIONS)
    train(tmp_path, first, num_train_epochs=2)
    checkpoint = tmp_path / "checkpoint-10"
    saved = json.loads((checkpoint / "trainer_state.json").read_text())
    carried = saved["stateful_callbacks"][STATE_KEY]
    second = EmissionsCallback(**OPTIONS)
    trainer, recorder = train(tmp_path, second, num_train_epochs=3, resume=str(checkpoint))
    third = next(logs for logs in recorder.logs if "carbon/energy_kwh" in logs)
    assert third["epoch"] == 3.0
    assert third["carbon/energy_kwh_total"] == pytest.approx(
        carried["energy_kwh_total"] + third["carbon/energy_kwh"], rel=1e-12
    )
    assert second.session.last_summary.energy_kwh > carried["energy_kwh_total"]
    epochs = [e["epoch"] for e in trainer.state.log_history if "carbon/energy_kwh" in e]
    assert epochs == [1.0, 2.0, 3.0]  # the checkpoint's history, then the resumed epoch


def test_budget_stops_training(tmp_path):
    callback = EmissionsCallback(budget_kwh=1e-12, on_budget="stop", **OPTIONS)
    trainer, _ = train(tmp_path, callback, num_train_epochs=3, save_strategy="no")
    assert trainer.state.epoch == 1.0
    assert callback.summary.stop_reason.startswith("budget")


def test_a_callback_outside_a_trainer_warns_with_the_fix(tmp_path, carbon_log):
    """A loop that calls the hooks itself gives no handler to move in: say how to order."""
    from transformers import TrainerControl, TrainerState

    callback = EmissionsCallback(**OPTIONS)
    callback.on_init_end(training_args(tmp_path), TrainerState(), TrainerControl())
    messages = [r.getMessage() for r in carbon_log]
    assert any("callbacks=[EmissionsCallback(...), TensorBoardCallback()]" in m for m in messages)


def test_two_callbacks_warn(tmp_path, carbon_log):
    Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, eval_strategy="no"),
        callbacks=[EmissionsCallback(**OPTIONS), EmissionsCallback(**OPTIONS)],
    )
    assert any("more than one EmissionsCallback" in r.getMessage() for r in carbon_log)


def test_callback_added_after_init_still_moves(tmp_path):
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, max_steps=1, eval_strategy="no", report_to=["tensorboard"]),
        train_dataset=Tokens(8),
    )
    callback = EmissionsCallback(**OPTIONS)
    trainer.add_callback(callback)
    trainer.train()
    assert trainer.callback_handler.callbacks[1] is callback


def test_inference_prefix():
    assert inference_prefix({"eval_loss": 1.0, "eval_runtime": 0.1}) == "eval"
    assert inference_prefix({"eval_a_runtime": 0.1}) == "eval_a"
    assert inference_prefix({"test_runtime": 0.1}) == "test"
    assert inference_prefix({"loss": 1.0, "learning_rate": 1e-3}) is None
    assert inference_prefix({"train_runtime": 3.0, "train_loss": 1.0}) is None


def test_card_helpers(tmp_path):
    gpu = {"name": "NVIDIA H100 80GB HBM3", "index": 0}
    assert hardware_used({"gpu": [gpu], "cpu": []}) == "1 x NVIDIA H100 80GB HBM3"
    assert hardware_used({"gpu": [gpu]}, processes=8) == "8 x NVIDIA H100 80GB HBM3"
    assert hardware_used({"gpu": [], "cpu": [{"name": "AMD EPYC 7763"}]}) == "AMD EPYC 7763 (CPU)"
    assert geographical_location(
        {"kind": "subdivision", "name": "California", "location": "US-CA"}
    ) == ("California (US-CA)")
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\ntags:\n- a\n---\n\n# My model\n\nText.\n")
    add_co2_to_model_card(card, {"emissions": 1.5, "source": "carbonlog"})
    add_co2_to_model_card(card, {"emissions": 2.5, "source": "carbonlog"})  # replaced, not doubled
    text = card.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front == {
        "license": "mit",
        "tags": ["a"],
        "co2_eq_emissions": {"emissions": 2.5, "source": "carbonlog"},
    }
    assert text.endswith("\n# My model\n\nText.\n")
    bare = tmp_path / "bare.md"
    bare.write_text("# Only a body\n")
    add_co2_to_model_card(bare, {"emissions": 1e-05})
    assert (
        yaml.safe_load(bare.read_text().split("---\n")[1])["co2_eq_emissions"]["emissions"] == 1e-05
    )
    assert bare.read_text().endswith("---\n# Only a body\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_sum_once(tmp_path):
    """gloo, 2 CPU processes: each counts its (forced) GPU, only local rank 0 the host."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), str(SCRIPT), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    world_w = 2 * POWER_W["gpu"] + POWER_W["cpu"] + POWER_W["ram"]
    zero = ranks[0]
    # every process holds the one sum (not its own share, not the sum taken twice)
    assert ranks[1]["energy_kwh"] == pytest.approx(zero["energy_kwh"], rel=1e-12)
    assert zero["energy_kwh"] * J_PER_KWH == pytest.approx(world_w * zero["duration_s"], rel=0.025)
    epochs = [iv for iv in zero["intervals"] if iv[0] == "epoch"]
    assert len(epochs) == 2
    logged = [e["carbon/energy_kwh"] for e in zero["log_history"] if "carbon/energy_kwh" in e]
    assert logged == pytest.approx([iv[1] for iv in epochs], rel=1e-12)
    card = yaml.safe_load((tmp_path / "README.md").read_text().split("---\n")[1])
    assert card["co2_eq_emissions"]["emissions"] == pytest.approx(zero["co2_kg"] * 1000, rel=1e-12)
    assert card["co2_eq_emissions"]["hardware_used"].startswith("2 x ")
