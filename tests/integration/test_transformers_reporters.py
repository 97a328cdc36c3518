"""What the Transformers adapter adds to a user's reporters, and what it costs: real Trainer runs
of a tiny BERT on the CPU, read back from TensorBoard event files, a W&B offline run and an
MLflow file store.

- Clutter: the series the callback adds to TensorBoard, counted against a run without it.
- One meaning per key: an evaluation's keys are its own energy, inside training or standalone.
- Provenance: once per train(), in each reporter's place for run metadata, not as series.
- Cost: counters are read at epoch edges only, unless pieces are asked for.
"""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from test_transformers import (  # noqa: E402
    COMPACT,
    FINAL,
    G_PER_KWH,
    HOST_W,
    J_PER_KWH,
    OPTIONS,
    scalars,
    train,
)
from transformers import Trainer  # noqa: E402
from transformers_ddp_script import Tokens, tiny_bert, training_args  # noqa: E402

import carbonlog.tracking.edges  # noqa: E402
from carbonlog.integrations.transformers import EmissionsCallback  # noqa: E402

PROVENANCE = {
    "carbon/location": "USER",
    "carbon/intensity_g_per_kwh": G_PER_KWH,
    "carbon/intensity_source": "user",
    "carbon/pue": 1.0,
    "carbon/measured": "none",
    "carbon/estimated": "gpu,cpu,ram",  # power_w: every component is a constant-power model
}
"""The provenance of OPTIONS' runs: a user-given intensity, forced power, no counter at all."""


def tensorboard_tags(out: Path, kind: str) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = set()
    for run in {p.parent for p in out.rglob("events.out.tfevents.*")}:
        events = EventAccumulator(str(run), size_guidance={"tensors": 0})
        events.Reload()
        found |= set(events.Tags()[kind])
    return found


def tensorboard_text(out: Path, tag: str) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    texts = []
    for run in sorted({p.parent for p in out.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(run), size_guidance={"tensors": 0})
        events.Reload()
        if tag in events.Tags()["tensors"]:
            texts += [e.tensor_proto.string_val[0].decode() for e in events.Tensors(tag)]
    return texts


# -- clutter ---------------------------------------------------------------------------------


def test_the_callback_adds_six_series_to_tensorboard(tmp_path):
    """Before: the Trainer's own series. After: those, and the compact set per epoch plus the
    final totals; the Trainer's own log events unchanged; `train()` returns the totals only."""
    found, returned, history = {}, {}, {}
    for name, callbacks in (("before", []), ("after", [EmissionsCallback(**OPTIONS)])):
        trainer = Trainer(
            model=tiny_bert(),
            args=training_args(tmp_path / name, report_to=["tensorboard"]),
            train_dataset=Tokens(40),
            eval_dataset=Tokens(16, seed=1),
            callbacks=callbacks,
        )
        returned[name] = trainer.train().metrics
        found[name] = tensorboard_tags(tmp_path / name, "scalars")
        history[name] = [e.keys() for e in trainer.state.log_history if "carbon/co2_kg" not in e]
    assert len(found["before"]) == 13 and len(found["after"]) == 19
    assert found["after"] - found["before"] == {f"train/{key}" for key in COMPACT | FINAL}
    assert returned["after"].keys() - returned["before"].keys() == FINAL
    assert [keys - FINAL for keys in history["after"]] == history["before"]


# -- one meaning per key ---------------------------------------------------------------------


def test_evaluation_keys_mean_that_evaluation_inside_training_or_not(tmp_path):
    """In TensorBoard, `eval/carbon/*` of the evaluations inside training (with log_steps) and
    of a standalone evaluate() at the same step are each that evaluation's own energy: mean
    power is the forced watts, and no running total shares their names."""
    callback = EmissionsCallback(**{**OPTIONS, "metrics": "full", "log_steps": True})
    trainer, _ = train(tmp_path, callback, report_to=["tensorboard"])
    standalone = trainer.evaluate()["eval_carbon/energy_kwh"]
    own_run = callback.session.last_summary
    found = scalars(tmp_path)
    evaluations = {tag[len("eval/carbon/") :] for tag in found if tag.startswith("eval/carbon/")}
    assert "energy_kwh" in evaluations
    assert not any(name.endswith("_total") for name in evaluations)  # no curve that dives
    energy = found["eval/carbon/energy_kwh"]
    assert [step for step, _ in energy] == [5, 10, 10]  # the standalone one at the fit's last
    assert own_run is not callback.summary and standalone == own_run.energy_kwh
    assert energy[-1][1] == pytest.approx(standalone, rel=1e-6)  # float32 in TensorBoard
    inside = [watts for _, watts in found["eval/carbon/power_w"]]  # the standalone has none
    assert inside == pytest.approx([HOST_W, HOST_W], rel=1e-3)
    for (_, kwh), (_, watts), (_, seconds) in zip(
        energy, found["eval/carbon/power_w"], found["eval/carbon/duration_s"], strict=False
    ):
        assert kwh * J_PER_KWH == pytest.approx(watts * seconds, rel=1e-3)


# -- provenance ------------------------------------------------------------------------------


def test_provenance_reaches_tensorboard_as_text_once_per_train(tmp_path):
    callback = EmissionsCallback(**OPTIONS)
    train(tmp_path, callback, report_to=["tensorboard"])
    (text,) = tensorboard_text(tmp_path, "carbon/provenance/text_summary")
    rows = dict(line.strip("| ").split(" | ") for line in text.splitlines()[2:])
    assert rows == {key: str(value) for key, value in PROVENANCE.items()}
    assert not any("location" in tag or "source" in tag for tag in scalars(tmp_path))


def test_a_reporter_that_refuses_the_provenance_costs_one_warning(tmp_path, carbon_warnings):
    from transformers.integrations import TensorBoardCallback

    class Refusing(TensorBoardCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            super().on_train_begin(args, state, control, **kwargs)

            def add_text(*args, **kwargs):
                raise OSError("disk full")

            self.tb_writer.add_text = add_text

    callback = EmissionsCallback(**OPTIONS)
    Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, save_strategy="no"),
        train_dataset=Tokens(40),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[callback, Refusing()],
    ).train()
    assert callback.summary.status == "completed" and len(callback.summary.intervals) == 3
    (warned,) = [record.getMessage() for record in carbon_warnings]
    assert "TensorBoardCallback was not told the run's provenance (disk full)" in warned


def wandb_config(run_file: Path) -> dict:
    """The config a W&B offline run recorded, read from its .wandb file (a LevelDB-style log of
    protobuf records: a 7-byte header, 32 KiB blocks of chunks with 7-byte chunk headers)."""
    from wandb.proto import wandb_internal_pb2

    data, position, chunks, config = run_file.read_bytes(), 7, b"", {}
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunks += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            which = record.WhichOneof("record_type")
            items = {"run": record.run.config, "config": record.config}.get(which)
            for item in items.update if items is not None else ():
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


def test_provenance_reaches_wandb_config(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()  # settings an earlier run in this process left (Lightning's logger)
    callback = EmissionsCallback(**OPTIONS)
    try:
        train(tmp_path / "out", callback, report_to=["wandb"], save_strategy="no")
    finally:
        wandb.finish()
        wandb.teardown()  # the service process writes the run's file out as it stops
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    config = wandb_config(run_file)
    assert {key: config.get(key) for key in PROVENANCE} == PROVENANCE
    assert config["learning_rate"] == 5e-05  # the Trainer's own config is kept


def test_provenance_reaches_mlflow_params(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    # earlier tests' loggers in this process (Lightning's, Keras') leave mlflow's own state:
    # end their runs in their own store, then point mlflow at this test's
    while mlflow.active_run() is not None:
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            mlflow.end_run()  # popped first: its store may be gone with its test's tmp_path
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "carbonlog-hf")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(store)
    callback = EmissionsCallback(**OPTIONS)
    train(tmp_path / "out", callback, report_to=["mlflow"], save_strategy="no")
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    params = run.data.params
    assert {key: params.get(key) for key in PROVENANCE} == {
        key: str(value) for key, value in PROVENANCE.items()
    }
    assert "carbon/energy_kwh_total" in run.data.metrics  # the figures are metrics, as before
    assert not any(key in run.data.metrics for key in PROVENANCE)


# -- cost ------------------------------------------------------------------------------------


@pytest.fixture
def counter_reads(monkeypatch):
    """The EmissionsCallback hook (innermost) behind each read of the meters' counters."""
    import sys

    reads: list[tuple[str, int]] = []
    read_all = carbonlog.tracking.edges.Edges._read_all

    def counted(self):
        frame = sys._getframe(1)
        while frame is not None:
            owner = type(frame.f_locals.get("self")).__name__
            if owner == "EmissionsCallback" and frame.f_code.co_name.startswith("on_"):
                reads.append((frame.f_code.co_name, frame.f_locals["state"].global_step))
                break
            frame = frame.f_back
        return read_all(self)

    monkeypatch.setattr(carbonlog.tracking.edges.Edges, "_read_all", counted)
    return reads


def test_counters_are_read_at_epoch_edges_only(tmp_path, counter_reads):
    """5 logs and 2 evaluations: counters read at the 2 epoch edges (each epoch's last step)
    and the end, no more."""
    train(tmp_path, EmissionsCallback(**OPTIONS), save_strategy="no")
    assert counter_reads == [("on_step_end", 5), ("on_step_end", 10), ("on_log", 10)]


def test_log_steps_reads_counters_at_each_log_and_evaluation(tmp_path, counter_reads):
    train(tmp_path, EmissionsCallback(**{**OPTIONS, "log_steps": True}), save_strategy="no")
    hooks = [hook for hook, _ in counter_reads]
    # the logs (but step 10's, at the epoch edge), the evaluations, the last piece, the end
    assert hooks.count("on_log") == 4 + 2 + 2
    assert hooks.count("on_step_end") == 2 * 2  # at each epoch edge: the piece, the edge
