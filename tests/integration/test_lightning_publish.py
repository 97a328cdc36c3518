"""Where the Lightning callback's figures go: straight to the loggers and callback_metrics (never
through `pl_module.log`, whose keys Lightning carries through every later step), the compact set
by default, on Lightning's own x axis, monitorable from the first validation on, and the run's
provenance once as hyperparameters. Each test reads back what a logger wrote."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import yaml

pytest.importorskip("lightning")

import torch  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from lightning.pytorch.demos.boring_classes import BoringModel  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402

from carbonlog.integrations.lightning import EmissionsCallback  # noqa: E402
from carbonlog.metrics import METRIC_SETS  # noqa: E402

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
OPTIONS = {"intensity": 100.0, "pue": 1.5, "power_w": WATTS, "ledger": False, "verbose": False}
EPOCHS = 2
PROVENANCE = {
    "carbon/location": "USER",
    "carbon/intensity_g_per_kwh": 100.0,
    "carbon/intensity_source": "user",
    "carbon/pue": 1.5,
    "carbon/measured": "none",
    "carbon/estimated": "gpu,cpu,ram",
}
"""What power_w and intensity= make of the run: every component a constant-power estimate."""


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path / "home"))


def fit(tmp_path: Path, callbacks, logger=False, model=None, **kwargs) -> Trainer:
    options = {
        "max_epochs": EPOCHS,
        "limit_train_batches": 4,
        "limit_val_batches": 2,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
        "default_root_dir": tmp_path,
        "logger": logger,
    }
    trainer = Trainer(callbacks=callbacks, **{**options, **kwargs})
    trainer.fit(model or BoringModel())
    return trainer


def csv_rows(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def carbon_keys(row: dict[str, str]) -> set[str]:
    return {key for key, value in row.items() if key.startswith("carbon/") and value != ""}


def test_the_compact_set_by_default_and_a_bad_set_fails_at_construction(tmp_path):
    logger = CSVLogger(tmp_path, name="compact")
    fit(tmp_path, [EmissionsCallback(**OPTIONS)], logger)
    epochs = [row for row in csv_rows(logger) if row.get("carbon/energy_kwh")]
    compact = {f"carbon/{name}" for name in METRIC_SETS["compact"]}
    assert len(epochs) == EPOCHS
    assert all(carbon_keys(row) == compact - {"carbon/co2_saved_vs_scratch_kg"} for row in epochs)
    with pytest.raises(ValueError, match="metrics must be one of"):
        EmissionsCallback(metrics="everything", **OPTIONS)


def test_nothing_is_logged_through_pl_module_log_during_a_fit(tmp_path):
    """Lightning carries every key logged through self.log through each later training step."""
    logged: list[str] = []

    class Spied(BoringModel):
        def log(self, name, *args, **kwargs):
            logged.append(name)
            return super().log(name, *args, **kwargs)

    logger = CSVLogger(tmp_path, name="spied")
    callback = EmissionsCallback(log_every_n_steps=2, **OPTIONS)
    trainer = fit(tmp_path, [callback], logger, model=Spied())
    assert not [name for name in logged if name.startswith("carbon/")]
    assert not [key for key in trainer.logged_metrics if key.startswith("carbon/")]
    assert trainer.callback_metrics["carbon/co2_kg_total"] == pytest.approx(
        callback.summary.co2_kg, rel=1e-12
    )
    assert [row["carbon/step/energy_kwh"] != "" for row in csv_rows(logger)].count(True) == 4


def test_carbon_rows_land_on_the_step_of_the_models_own_epoch_metrics(tmp_path):
    """Two optimizers stepped by hand: global_step runs twice as fast as Lightning's x axis."""

    class TwoOptimizers(BoringModel):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.other = torch.nn.Linear(32, 2)

        def training_step(self, batch, batch_idx):
            for optimizer, layer in zip(self.optimizers(), (self.layer, self.other), strict=True):
                loss = layer(batch).sum()
                optimizer.zero_grad()
                self.manual_backward(loss)
                optimizer.step()
            self.log("train_loss", loss, on_step=False, on_epoch=True)

        def configure_optimizers(self):
            return [torch.optim.SGD(m.parameters(), lr=0.1) for m in (self.layer, self.other)]

    logger = CSVLogger(tmp_path, name="steps")
    trainer = fit(tmp_path, [EmissionsCallback(**OPTIONS)], logger, model=TwoOptimizers())
    rows = csv_rows(logger)
    model_steps = [row["step"] for row in rows if row.get("train_loss")]
    carbon_steps = [row["step"] for row in rows if row.get("carbon/energy_kwh")]
    assert carbon_steps == model_steps == ["3", "7"]
    assert [row["epoch"] for row in rows if row.get("carbon/energy_kwh")] == ["0", "1"]
    assert trainer.global_step == 16  # where the carbon rows landed before


def test_monitors_of_the_total_work_with_validation_inside_the_epoch(tmp_path):
    """With val_check_interval=0.5 monitors read at each validation's end, before the epoch's
    edge: the running total must be there from the first one on, and grow."""
    seen: list[float] = []

    class Watch(EarlyStopping):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:  # monitors skip it, as the totals do
                seen.append(float(trainer.callback_metrics["carbon/co2_kg_total"]))
            super().on_validation_end(trainer, pl_module)

    watch = Watch(monitor="carbon/co2_kg_total", mode="max", patience=99)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="carbon/co2_kg_total")
    callback = EmissionsCallback(**OPTIONS)
    fit(tmp_path, [watch, checkpoint, callback], val_check_interval=0.5, enable_checkpointing=True)
    assert len(seen) == 2 * EPOCHS
    assert all(0 < a < b for a, b in zip(seen, seen[1:], strict=False))
    epochs = [iv for iv in callback.summary.intervals if iv.label == "epoch"]
    assert seen[1] < epochs[0].co2_kg_total < seen[2]  # the epoch's validation before its edge
    assert Path(checkpoint.best_model_path).name == "epoch=0-step=2.ckpt"  # the least CO2
    assert float(checkpoint.best_model_score) == pytest.approx(seen[0], rel=1e-12)


def test_the_running_total_is_in_callback_metrics_from_the_first_batch(tmp_path):
    seen: list[float] = []

    class Reader(BoringModel):
        def training_step(self, batch, batch_idx):
            seen.append(float(self.trainer.callback_metrics["carbon/co2_kg_total"]))
            return super().training_step(batch, batch_idx)

    callback = EmissionsCallback(**OPTIONS)
    fit(tmp_path, [callback], model=Reader())
    first_epoch = [iv for iv in callback.summary.intervals if iv.label == "epoch"][0]
    assert seen[:4] == [0.0] * 4
    assert seen[4:] == [pytest.approx(first_epoch.co2_kg_total, rel=1e-12)] * 4


def test_the_provenance_reaches_each_logger_once_as_hyperparameters(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"file:{tmp_path}/mlruns"
    loggers = [
        CSVLogger(tmp_path, name="csv"),
        TensorBoardLogger(tmp_path, name="tb"),
        MLFlowLogger(experiment_name="carbonlog", tracking_uri=uri),
    ]
    fit(tmp_path, [EmissionsCallback(**OPTIONS)], loggers)

    hparams = yaml.safe_load((Path(loggers[0].log_dir) / "hparams.yaml").read_text())
    assert PROVENANCE.items() <= hparams.items()
    assert "carbon/location" not in csv_rows(loggers[0])[0]  # not a series
    events = EventAccumulator(loggers[1].log_dir)
    events.Reload()
    assert not [tag for tag in events.Tags()["scalars"] if tag in PROVENANCE]
    (text,) = events.Tensors("carbon/provenance/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert all(f"| {key} | {value} |" in table for key, value in PROVENANCE.items())
    run = MlflowClient(tracking_uri=uri).get_run(loggers[2].run_id)
    assert {k: str(v) for k, v in PROVENANCE.items()}.items() <= run.data.params.items()
    assert "carbon/location" not in run.data.metrics


def test_verbose_false_silences_the_summary_and_verbose_says_it(tmp_path, carbon_log):
    fit(tmp_path, [EmissionsCallback(**OPTIONS)])
    assert not [r for r in carbon_log if r.levelno < logging.WARNING]
    fit(tmp_path, [EmissionsCallback(**{**OPTIONS, "verbose": True})])
    assert any("fit used" in r.getMessage() for r in carbon_log)
