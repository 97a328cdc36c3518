"""Transformers adapter: real Trainer runs of a tiny BERT built from a config, on the CPU.

Constant power is forced (power_w), so every interval's energy is watts x seconds and the
figures can be checked exactly; the TensorBoard event file, trainer_state.json and the
model card are read back from disk. The default run logs the compact set at epoch ends only;
`metrics="full", log_steps=True` adds the schema and the pieces between epoch edges.
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
    evaluation_keys,
    inference_prefix,
)
from carbonlog.metrics import KEYS, METRIC_SETS  # noqa: E402
from carbonlog.report.model_card import (  # noqa: E402
    add_co2_to_model_card,
    geographical_location,
    hardware_used,
)

J_PER_KWH = 3.6e6
G_PER_KWH = 50.0
HOST_W = POWER_W["gpu"] + POWER_W["cpu"] + POWER_W["ram"]  # one process: its GPU and the host
OPTIONS = {"intensity": G_PER_KWH, "ledger": False, "verbose": False, "power_w": POWER_W}
PIECES = {**OPTIONS, "metrics": "full", "log_steps": True}
COMPACT = {f"carbon/{name}" for name in METRIC_SETS["compact"]} - {"carbon/co2_saved_vs_scratch_kg"}
FINAL = {"carbon/energy_kwh_total", "carbon/co2_kg_total", "carbon/duration_s_total"}
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


def carbon_keys(logs) -> set[str]:
    return {key for key in logs if "carbon" in key}


def evaluated_run(out, callback):
    """Two epochs reported to TensorBoard; then a model card, an evaluate() and a predict()."""
    trainer, recorder = train(out, callback, report_to=["tensorboard"])
    trainer.save_state()
    trainer.create_model_card()
    evaluated = {**trainer.evaluate(), "summary": callback.session.last_summary}
    predicted = {
        **trainer.predict(Tokens(8, seed=2)).metrics,
        "summary": callback.session.last_summary,
    }
    return out, trainer, callback, recorder, evaluated, predicted


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """The defaults: the compact set at each epoch end, nothing between epoch edges."""
    return evaluated_run(tmp_path_factory.mktemp("tb"), EmissionsCallback(**OPTIONS))


@pytest.fixture(scope="module")
def pieces_run(tmp_path_factory):
    """`metrics="full", log_steps=True`: the schema, and the pieces between epoch edges."""
    return evaluated_run(tmp_path_factory.mktemp("pieces"), EmissionsCallback(**PIECES))


def test_callback_moves_ahead_of_the_reporters(tensorboard_run):
    _, trainer, callback, *_ = tensorboard_run
    order = trainer.callback_handler.callbacks
    assert isinstance(order[0], DefaultFlowCallback)
    assert order[1] is callback
    assert any(isinstance(cb, TensorBoardCallback) for cb in order[2:])


def test_tensorboard_holds_the_compact_set_per_epoch(tensorboard_run):
    out, trainer, callback, recorder, *_ = tensorboard_run
    found = scalars(out)
    epochs = [e for e in trainer.state.log_history if "carbon/energy_kwh" in e]
    assert [e["step"] for e in epochs] == [5, 10]
    assert [carbon_keys(e) for e in epochs] == [COMPACT, COMPACT]
    per_epoch = found["train/carbon/energy_kwh"]
    assert [step for step, _ in per_epoch] == [5, 10]
    for (_, logged), entry in zip(per_epoch, epochs, strict=True):
        assert logged == pytest.approx(entry["carbon/energy_kwh"], rel=1e-6)  # float32 in TB
    training = {tag for tag in found if tag.startswith("train/carbon/")}
    assert training == {f"train/{key}" for key in COMPACT | FINAL}
    # the Trainer's own logs carry nothing of carbonlog's, the final one the run's totals
    final = next(i for i, logs in enumerate(recorder.logs) if "train_runtime" in logs)
    assert carbon_keys(recorder.logs[final]) == FINAL
    own = [logs for logs in recorder.logs[:final] if "loss" in logs or "eval_loss" in logs]
    assert len(own) == 7 and not any(carbon_keys(logs) for logs in own)  # 5 logs, 2 evals


def test_tensorboard_holds_the_full_schema_and_the_pieces(pieces_run):
    out, trainer, *_ = pieces_run
    found = scalars(out)
    for name in KEYS:
        assert f"train/carbon/{name}" in found, name
    assert {step for step, _ in found["train/carbon/step/energy_kwh"]} == {2, 4, 5, 6, 8, 10}
    # the step values and evaluations reach the reporter only because the callback moved
    assert [step for step, _ in found["eval/carbon/energy_kwh"]][:2] == [5, 10]


def test_epoch_figures_are_watts_times_seconds(pieces_run):
    _, trainer, callback, *_ = pieces_run
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


def test_logged_pieces_add_up_to_the_total(pieces_run):
    """Step pieces and evaluation pieces tile the run: their sum is the final total."""
    _, _, callback, recorder, *_ = pieces_run
    end = next(i for i, logs in enumerate(recorder.logs) if "train_runtime" in logs)
    training, final = recorder.logs[:end], recorder.logs[end]
    pieces = [logs.get("carbon/step/energy_kwh", 0.0) for logs in recorder.logs[: end + 1]]
    pieces += [logs.get("eval_carbon/energy_kwh", 0.0) for logs in training]
    assert final["carbon/energy_kwh_total"] == pytest.approx(callback.summary.energy_kwh)
    assert 0 <= (final["carbon/energy_kwh_total"] - sum(pieces)) * J_PER_KWH < LEFT_OUT_J
    # each training log carries the energy since the previous piece, at its own step; so does
    # each epoch end (5, 10), closed before the Trainer's log of its step (which has none then)
    steps = [logs["step"] for logs in training if "carbon/step/energy_kwh" in logs]
    assert steps == [2, 4, 5, 6, 8, 10]
    at_10 = [logs for logs in training if logs["step"] == 10 and "loss" in logs]
    assert len(at_10) == 1 and "carbon/step/energy_kwh" not in at_10[0]


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


@pytest.mark.parametrize("run", ["tensorboard_run", "pieces_run"])
def test_evaluate_and_predict_log_their_own_energy(run, request):
    """A standalone evaluate()/predict() is its own run: its keys are its figures, no totals."""
    out, trainer, callback, _, evaluated, predicted = request.getfixturevalue(run)
    for metrics_, prefix in ((evaluated, "eval_carbon/"), (predicted, "test_carbon/")):
        own = carbon_keys(metrics_)
        assert {prefix + "energy_kwh", prefix + "co2_kg", prefix + "duration_s"} <= own
        assert not any(key.endswith("_total") for key in own)
        own_run = metrics_["summary"]  # the evaluation's own run, not the fit
        assert own_run is not callback.summary and own_run.intervals
        assert metrics_[prefix + "energy_kwh"] == own_run.energy_kwh > 0
        assert metrics_[prefix + "co2_kg"] == pytest.approx(
            metrics_[prefix + "energy_kwh"] * G_PER_KWH / 1000
        )
    # the standalone evaluate reached TensorBoard too, after training's (with log_steps)
    trained = 2 if run == "pieces_run" else 0
    assert len(scalars(out)["eval/carbon/energy_kwh"]) == trained + 1


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
        {"eval_strategy": "epoch", "logging_steps": 3},
    ],
    ids=["eval-between-logs", "eval-at-epochs"],
)
def test_pieces_tile_the_run_whatever_the_schedule(tmp_path, schedule):
    callback = EmissionsCallback(**{**OPTIONS, "log_steps": True})
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


@pytest.mark.parametrize("strategy", ["epoch", "no"])
def test_no_pieces_where_the_epochs_are_the_logs(tmp_path, strategy, carbon_log):
    """Under logging_strategy "epoch" or "no" a piece would repeat the epoch's figures."""
    callback = EmissionsCallback(**{**OPTIONS, "log_steps": True})
    trainer, recorder = train(tmp_path, callback, save_strategy="no", logging_strategy=strategy)
    assert not any(key.startswith(("carbon/step/", "eval_")) for logs in recorder.logs
                   for key in carbon_keys(logs))  # fmt: skip
    assert [e["step"] for e in trainer.state.log_history if "carbon/energy_kwh" in e] == [5, 10]
    said = [r.getMessage() for r in carbon_log if "log_steps=True adds nothing" in r.getMessage()]
    assert len(said) == 1 and repr(strategy) in said[0]


def test_log_steps_must_be_a_bool():
    with pytest.raises(TypeError, match="log_steps"):
        EmissionsCallback(log_steps="yes", **OPTIONS)
    with pytest.raises(ValueError, match="metrics"):
        EmissionsCallback(metrics="everything", **OPTIONS)


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


def test_the_ledger_keeps_what_each_epoch_logged_and_evaluated(tmp_path):
    """The epoch closes at its last step, before the Trainer logs and evaluates that step:
    those still go to the epoch's record in the ledger, not to the next epoch's."""
    from carbonlog.ledger import Ledger

    trainer, _ = train(tmp_path, EmissionsCallback(**{**OPTIONS, "ledger": True}))
    history = trainer.state.log_history
    with Ledger(Path(os.environ["CARBONLOG_HOME"]) / "ledger.sqlite3") as ledger:
        (run,) = ledger.runs()
        epochs = [iv for iv in ledger.run(run.id).intervals if iv.label == "epoch"]
    for epoch, (first, last) in zip(epochs, ((0, 5), (5, 10)), strict=True):
        logged = [e for e in history if "loss" in e and first < e["step"] <= last]
        evaluated = next(e for e in history if "eval_loss" in e and e["step"] == last)
        assert epoch.metrics["loss"] == pytest.approx(logged[-1]["loss"])  # step 4, step 10
        assert epoch.metrics["eval_loss"] == pytest.approx(evaluated["eval_loss"])


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


def test_evaluation_keys():
    piece = {"carbon/step/energy_kwh": 1.0, "carbon/step/energy_kwh_total": 3.0, "loss": 0.5}
    assert evaluation_keys(piece, "carbon/step/", "eval_carbon/") == {"eval_carbon/energy_kwh": 1.0}
    assert evaluation_keys({"carbon/inference/co2_kg_total": 2.0}, "carbon/inference/", "x/") == {}


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


def torchrun(out: Path, *options: str) -> list[dict]:
    """The DDP script under torchrun, 2 processes on gloo: what each rank wrote."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), str(SCRIPT), str(out), *options,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def carbonlog_collectives(rank: dict) -> list[tuple]:
    """(name, size, dtype, hook, step) of each collective carbonlog's code made on a rank."""
    return [
        (c["name"], c["numel"], c["dtype"], c["hook"], c["step"])
        for c in rank["collectives"]["carbonlog"]
    ]


ONE_SUM = ("all_reduce", 28, "torch.float64")
"""The one collective carbonlog makes: an all-reduce of a 28-float64 vector."""


@pytest.mark.slow
def test_torchrun_two_processes_sum_once(tmp_path):
    """gloo, 2 CPU processes: each counts its (forced) GPU, only local rank 0 the host."""
    ranks = torchrun(tmp_path)
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
    # one sum at each epoch edge (the epoch's last step, 10 and 20) and one at the end of
    # training, on every rank; none for the 10 logs and 2 evaluations, whose own collectives
    # the Trainer makes (seen by the same wrapping)
    for rank in ranks:
        edges = [("on_step_end", 10), ("on_step_end", 20), ("on_log", 20)]
        assert carbonlog_collectives(rank) == [(*ONE_SUM, *edge) for edge in edges]
        assert len(rank["collectives"]["others"]) > 10


@pytest.mark.slow
def test_torchrun_log_steps_sums_each_piece(tmp_path):
    """With log_steps, each piece is one more sum, so every process logs the same pieces."""
    ranks = torchrun(tmp_path, "log_steps")
    for rank in ranks:
        found = carbonlog_collectives(rank)
        edges = [c for c in found if c[:3] == ONE_SUM]
        assert [c[3:] for c in edges] == [("on_step_end", 10), ("on_step_end", 20), ("on_log", 20)]
        pieces = [c for c in found if c not in edges]
        assert {c[:3] for c in pieces} == {("all_reduce", 6, "torch.float64")}  # piece, open part
        # 8 logs (10 and 20 are epoch edges), 2 evaluations, the last piece; the piece up to
        # each epoch edge
        hooks = [c[3] for c in pieces]
        assert (hooks.count("on_log"), hooks.count("on_step_end"), len(hooks)) == (11, 2, 13)
    pieces = [
        [e["carbon/step/energy_kwh"] for e in rank["log_history"] if "carbon/step/energy_kwh" in e]
        for rank in ranks
    ]
    assert len(pieces[0]) == 11 and pieces[1] == pytest.approx(pieces[0], rel=1e-12)


# -- the band, the work, embodied and water ---------------------------------------------------


def test_a_trainer_run_has_its_band_and_its_energy_per_sample_and_per_token(tmp_path):
    from transformers_ddp_script import SEQ_LEN

    from carbonlog.ledger import Ledger
    from carbonlog.report.rows import run_band

    path = tmp_path / "ledger.db"
    options = {**OPTIONS, "metrics": "full", "ledger": str(path)}
    callback = EmissionsCallback(**options)
    trainer = Trainer(  # 36 examples, batches of 8: 5 steps an epoch, the last of 4 examples
        model=tiny_bert(),
        args=training_args(tmp_path, include_num_input_tokens_seen=True, save_strategy="no"),
        train_dataset=Tokens(36),
        eval_dataset=Tokens(8, seed=1),
        callbacks=[callback],
    )
    trainer.train()

    summary = callback.summary
    assert (summary.samples, summary.tokens) == (2 * 36, 2 * 36 * SEQ_LEN)
    assert summary.energy_per_token_j == pytest.approx(summary.energy_kwh * J_PER_KWH / 864)
    assert summary.methods == {"gpu": "model", "cpu": "model", "ram": "model"}
    assert summary.band.energy_kwh > 0 and summary.band.component == "gpu"
    assert summary.embodied_kg is None and summary.water_l is None  # a user's intensity
    epochs = [e for e in trainer.state.log_history if "carbon/energy_kwh" in e]
    assert len(epochs) == 2
    for logged in epochs:  # metrics="full": per epoch too
        energy_j = logged["carbon/energy_kwh"] * J_PER_KWH
        assert logged["carbon/energy_per_sample_j"] == pytest.approx(energy_j / 36)
        assert logged["carbon/energy_per_token_j"] == pytest.approx(energy_j / (36 * SEQ_LEN))

    with Ledger(path) as ledger:
        record = ledger.run(summary.run_id)
    assert (record.samples, record.tokens) == (72.0, 864.0)
    assert run_band(record) == pytest.approx(summary.band)
