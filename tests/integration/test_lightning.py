"""The Lightning callback with real Lightning, a tiny model on the CPU, and real loggers.

Each test reads back what a logger wrote (CSV file, TensorBoard events, W&B offline run
files, MLflow store) rather than trusting the callback's own view.
"""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import torch  # noqa: E402
from lightning.pytorch import Callback, Trainer  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from lightning.pytorch.demos.boring_classes import BoringModel  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402

from carbonlog.integrations.lightning import EmissionsCallback, _planned_epochs  # noqa: E402
from carbonlog.ledger import Ledger  # noqa: E402
from carbonlog.metrics import KEYS  # noqa: E402

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
OPTIONS = {
    "intensity": 100.0,
    "pue": 1.5,
    "power_w": WATTS,
    "ledger": False,
    "verbose": False,
    "metrics": "full",
}
SCHEMA = [f"carbon/{k}" for k in KEYS]
EPOCHS = 3


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path / "home"))


def make_trainer(tmp_path: Path, callbacks, logger=None, **kwargs) -> Trainer:
    options = {
        "max_epochs": EPOCHS,
        "limit_train_batches": 4,
        "limit_val_batches": 2,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
        "default_root_dir": tmp_path,
        "logger": logger if logger is not None else False,
    }
    options.update(kwargs)
    return Trainer(callbacks=callbacks, **options)


def csv_rows(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def epoch_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if row.get("carbon/energy_kwh")]


# -- pure helpers and options ------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_epochs", "max_steps", "batches", "accumulate", "planned"),
    [
        (10, -1, 100, 1, 10),
        (-1, 250, 100, 1, 3),
        (None, 250, 100, 4, 10),  # 25 optimizer steps per epoch
        (5, 250, 100, 1, 3),  # whichever limit comes first
        (-1, 250, float("inf"), 1, None),  # an iterable dataset of unknown length
        (-1, -1, 100, 1, None),
    ],
)
def test_planned_epochs_from_max_epochs_or_max_steps(
    max_epochs, max_steps, batches, accumulate, planned
):
    assert _planned_epochs(max_epochs, max_steps, batches, accumulate) == planned


@pytest.mark.parametrize(
    "bad",
    [{"pue": -1.0}, {"power_w": {"fan": 3.0}}, {"log_every_n_steps": 0}, {"on_budget": "panic"}],
)
def test_a_bad_option_fails_at_construction(bad):
    with pytest.raises(ValueError):
        EmissionsCallback(**{**OPTIONS, **bad})


def test_without_lightning_the_import_names_the_extra():
    hide = (
        "import importlib.util as u; real = u.find_spec; "
        "u.find_spec = lambda name, *a: None if name in ('lightning', 'pytorch_lightning') "
        "else real(name, *a)\n"
        "try:\n    import carbonlog.integrations.lightning\n"
        "except ImportError as exc:\n    print(exc)\n"
        "import sys; print(sorted(m for m in ('lightning', 'pytorch_lightning') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'pip install "carbonlog[lightning]"' in done.stdout
    assert done.stdout.strip().endswith("[]")  # neither namespace was imported


def test_both_lightning_namespaces_accept_the_callback(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    callback = EmissionsCallback(**OPTIONS)
    assert isinstance(callback, Callback)
    assert isinstance(callback, pl.Callback)

    class PlModel(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)))
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=callback,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(PlModel(), data)
    assert set(SCHEMA) <= set(trainer.callback_metrics)
    assert callback.session.last_summary.status == "completed"


# -- loggers ------------------------------------------------------------------------------


def test_csv_logger_has_one_row_per_epoch_with_every_key_and_the_sums_hold(tmp_path):
    logger = CSVLogger(tmp_path, name="csv")
    callback = EmissionsCallback(**OPTIONS)
    trainer = make_trainer(tmp_path, [callback], logger)
    trainer.fit(BoringModel())

    rows = csv_rows(logger)
    epochs = epoch_rows(rows)
    assert [int(row["epoch"]) for row in epochs] == list(range(EPOCHS))
    for row in epochs:
        assert all(row[key] != "" for key in SCHEMA), row
        assert float(row["carbon/intensity_g_per_kwh"]) == 100.0
        assert float(row["carbon/power_w"]) == pytest.approx(sum(WATTS.values()), rel=0.1)
        components = sum(float(row[f"carbon/{c}_kwh"]) for c in WATTS)
        assert float(row["carbon/energy_kwh"]) == pytest.approx(components * 1.5, rel=1e-5)
        assert float(row["carbon/co2_kg"]) == pytest.approx(
            float(row["carbon/energy_kwh"]) * 100.0 / 1000.0, rel=1e-5
        )
    per_epoch = [float(row["carbon/energy_kwh"]) for row in epochs]
    assert sum(per_epoch) == pytest.approx(float(epochs[-1]["carbon/energy_kwh_total"]), rel=1e-5)
    co2 = [float(row["carbon/co2_kg"]) for row in epochs]
    assert sum(co2) == pytest.approx(float(epochs[-1]["carbon/co2_kg_total"]), rel=1e-5)

    # The fit's totals come last: the epochs plus the tail after the last one.
    summary = callback.session.last_summary
    final = rows[-1]
    assert final["carbon/energy_kwh"] == ""
    assert float(final["carbon/energy_kwh_total"]) == pytest.approx(summary.energy_kwh, rel=1e-9)
    assert summary.energy_kwh >= float(epochs[-1]["carbon/energy_kwh_total"])
    measured_s = sum(iv.duration_s for iv in summary.intervals)
    assert summary.device_j == pytest.approx(sum(WATTS.values()) * measured_s, rel=0.01)


def test_the_epochs_validation_counts_in_that_epoch(tmp_path):
    class SlowValidation(BoringModel):
        def validation_step(self, batch, batch_idx):
            time.sleep(0.1)
            return super().validation_step(batch, batch_idx)

    callback = EmissionsCallback(**OPTIONS)
    make_trainer(tmp_path, [callback], num_sanity_val_steps=0).fit(SlowValidation())
    *epochs, tail = callback.session.last_summary.intervals
    assert [iv.label for iv in epochs] == ["epoch"] * EPOCHS
    assert all(iv.duration_s >= 0.2 for iv in epochs)  # 2 validation batches of 100 ms
    assert tail.label == "end" and tail.duration_s < 0.2


def test_step_level_logging_every_n_batches(tmp_path):
    logger = CSVLogger(tmp_path, name="steps")
    callback = EmissionsCallback(log_every_n_steps=2, **OPTIONS)
    trainer = make_trainer(tmp_path, [callback], logger, limit_train_batches=6)
    trainer.fit(BoringModel())

    steps = [row for row in csv_rows(logger) if row.get("carbon/step/energy_kwh")]
    assert len(steps) == EPOCHS * 6 // 2
    assert all(float(row["carbon/step/energy_kwh"]) > 0 for row in steps)
    assert len(epoch_rows(csv_rows(logger))) == EPOCHS


def test_tensorboard_event_files_hold_every_key(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    callback = EmissionsCallback(**OPTIONS)
    make_trainer(tmp_path, [callback], logger).fit(BoringModel())

    events = EventAccumulator(logger.log_dir)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert set(SCHEMA) <= tags
    per_epoch = [e.value for e in events.Scalars("carbon/energy_kwh")]
    assert len(per_epoch) == EPOCHS
    totals = [e.value for e in events.Scalars("carbon/energy_kwh_total")]
    assert totals[EPOCHS - 1] == pytest.approx(sum(per_epoch), rel=1e-5)
    assert totals[-1] == pytest.approx(callback.session.last_summary.energy_kwh, rel=1e-6)


def wandb_records(run_file: Path) -> list:
    """The records of an offline W&B run's transaction log (run-<id>.wandb).

    The file is a LevelDB-style log: a 7-byte ":W&B" header, then 32 KiB blocks of chunks
    (crc32, length, type: 1 full, 2 first, 3 middle, 4 last), each record a protobuf Record.
    """
    from wandb.proto import wandb_internal_pb2

    block, data = 32768, run_file.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block trailer padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def wandb_history(run_file: Path, timeout_s: float = 30.0) -> list[dict[str, float]]:
    """The run's history rows, once its exit record is written (wandb-core writes the log
    from its own process, a moment after wandb.finish() returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = wandb_records(run_file)
        kinds = [record.WhichOneof("record_type") for record in records]
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return [
        {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in record.history.item
        }
        for record, kind in zip(records, kinds, strict=True)
        if kind == "history"
    ]


def test_wandb_offline_run_files_hold_every_key(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(save_dir=str(tmp_path), project="carbonlog-test", offline=True)
    callback = EmissionsCallback(**OPTIONS)
    make_trainer(tmp_path, [callback], logger).fit(BoringModel())
    wandb.finish()

    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    rows = wandb_history(run_file)
    epochs = [row for row in rows if "carbon/energy_kwh" in row]
    assert len(epochs) == EPOCHS
    assert all(set(SCHEMA) <= set(row) for row in epochs)
    per_epoch = sum(row["carbon/energy_kwh"] for row in epochs)
    assert per_epoch == pytest.approx(epochs[-1]["carbon/energy_kwh_total"], rel=1e-5)
    fit = callback.session.last_summary
    assert rows[-1]["carbon/energy_kwh_total"] == pytest.approx(fit.energy_kwh, rel=1e-9)
    assert rows[-1]["carbon/co2_kg_total"] == pytest.approx(fit.co2_kg, rel=1e-9)
    # the provenance is the run's config, not a series
    config = {
        item.key: json.loads(item.value_json)
        for record in wandb_records(run_file)
        if record.WhichOneof("record_type") == "config"
        for item in record.config.update
    }
    assert config["carbon/location"] == "USER" and config["carbon/estimated"] == "gpu,cpu,ram"
    said_once = {"carbon/location", "carbon/intensity_source", "carbon/measured", "carbon/pue"}
    assert said_once <= set(config) and not said_once & {key for row in rows for key in row}


def test_mlflow_store_holds_one_value_per_epoch(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    # MLflow 3 keeps the file store behind an opt-out (no SQLAlchemy in mlflow-skinny).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    uri = f"file:{tmp_path}/mlruns"
    logger = MLFlowLogger(experiment_name="carbonlog", tracking_uri=uri)
    callback = EmissionsCallback(**OPTIONS)
    make_trainer(tmp_path, [callback], logger).fit(BoringModel())

    client = MlflowClient(tracking_uri=uri)
    per_epoch = [m.value for m in client.get_metric_history(logger.run_id, "carbon/energy_kwh")]
    assert len(per_epoch) == EPOCHS
    totals = client.get_metric_history(logger.run_id, "carbon/energy_kwh_total")
    assert totals[EPOCHS - 1].value == pytest.approx(sum(per_epoch), rel=1e-5)
    run = client.get_run(logger.run_id)
    assert set(SCHEMA) <= set(run.data.metrics)
    fit = callback.session.last_summary
    assert run.data.metrics["carbon/energy_kwh_total"] == pytest.approx(fit.energy_kwh, rel=1e-9)


def test_the_ledger_records_the_fit_with_the_models_metrics_and_the_test_apart(tmp_path):

    class LoggingModel(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log("train_loss", out["loss"], on_step=False, on_epoch=True)
            return out

    path = str(tmp_path / "ledger.db")
    callback = EmissionsCallback(**{**OPTIONS, "ledger": path})
    trainer = make_trainer(tmp_path, [callback], limit_test_batches=2)
    trainer.fit(LoggingModel())
    fit_summary = callback.session.last_summary
    trainer.test(LoggingModel())

    ledger = Ledger(path)
    fit = ledger.run(fit_summary.run_id)
    assert (fit.framework, fit.stage, fit.model, fit.status) == (
        "lightning",
        "fit",
        "LoggingModel",
        "completed",
    )
    assert fit.epochs == EPOCHS
    assert fit.energy_kwh == pytest.approx(fit_summary.energy_kwh, rel=1e-9)
    epochs = [iv for iv in fit.intervals if iv.label == "epoch"]
    assert all("train_loss" in iv.metrics for iv in epochs)
    assert not any(key.startswith("carbon/") for iv in epochs for key in iv.metrics)
    test = ledger.run(callback.session.last_summary.run_id)
    assert (test.stage, test.status) == ("test", "completed")
    ledger.close()


# -- monitoring, resume, budget -----------------------------------------------------------


def test_checkpoint_and_early_stopping_monitor_the_total(tmp_path):
    # Listed before the emissions callback on purpose: Lightning runs monitoring callbacks
    # after the others at epoch end, so the key exists whatever the order.
    stopper = EarlyStopping(monitor="carbon/co2_kg_total", mode="min", patience=1)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="carbon/co2_kg_total")
    callback = EmissionsCallback(**OPTIONS)
    trainer = make_trainer(
        tmp_path, [stopper, checkpoint, callback], max_epochs=6, enable_checkpointing=True
    )
    trainer.fit(BoringModel())

    # The total only grows: the best is epoch 0 and patience 1 stops after epoch 1.
    assert trainer.current_epoch == 2
    first = callback.session.last_summary.intervals[0]
    assert float(checkpoint.best_model_score) == pytest.approx(first.co2_kg_total, rel=1e-6)
    assert "epoch=0" in Path(checkpoint.best_model_path).name


def test_resume_from_a_checkpoint_continues_the_totals(tmp_path):
    def saved_state(directory: Path) -> dict:
        checkpoint = torch.load(directory / "last.ckpt", weights_only=True)
        return checkpoint["callbacks"]["EmissionsCallback"]

    first = EmissionsCallback(**OPTIONS)
    make_trainer(
        tmp_path,
        [first, ModelCheckpoint(dirpath=tmp_path / "a", save_last=True)],
        max_epochs=2,
        enable_checkpointing=True,
    ).fit(BoringModel())
    saved = saved_state(tmp_path / "a")
    assert saved["epochs_done"] == 2
    # After the fit, the callback's state is the finished fit's (for trainer.save_checkpoint).
    assert first.state_dict()["energy_kwh_total"] == first.session.last_summary.energy_kwh
    last_epoch = [iv for iv in first.session.last_summary.intervals if iv.label == "epoch"][-1]
    assert saved["energy_kwh_total"] == pytest.approx(last_epoch.energy_kwh_total, rel=1e-12)

    logger = CSVLogger(tmp_path, name="resumed")
    second = EmissionsCallback(**OPTIONS)
    make_trainer(
        tmp_path,
        [second, ModelCheckpoint(dirpath=tmp_path / "b", save_last=True)],
        logger,
        max_epochs=4,
        enable_checkpointing=True,
    ).fit(BoringModel(), ckpt_path=tmp_path / "a" / "last.ckpt")

    epochs = epoch_rows(csv_rows(logger))
    assert [int(row["epoch"]) for row in epochs] == [2, 3]
    resumed_first = float(epochs[0]["carbon/energy_kwh_total"])
    assert resumed_first > saved["energy_kwh_total"]
    assert resumed_first == pytest.approx(
        saved["energy_kwh_total"] + float(epochs[0]["carbon/energy_kwh"]), rel=1e-5
    )
    assert second.session.last_summary.energy_kwh > saved["energy_kwh_total"]
    assert saved_state(tmp_path / "b")["epochs_done"] == 4  # the earlier epochs included


def test_budget_with_on_budget_stop_ends_the_fit_early(tmp_path):
    callback = EmissionsCallback(budget_kwh=1e-12, on_budget="stop", **OPTIONS)
    trainer = make_trainer(tmp_path, [callback], max_epochs=5)
    trainer.fit(BoringModel())
    assert trainer.current_epoch == 1
    assert callback.session.last_summary.stop_reason.startswith("budget")


# -- standalone stages, no logger, failures -----------------------------------------------


def test_validate_test_and_predict_log_their_own_keys(tmp_path):
    logger = CSVLogger(tmp_path, name="stages")
    callback = EmissionsCallback(**OPTIONS)
    trainer = make_trainer(
        tmp_path, [callback], logger, limit_test_batches=2, limit_predict_batches=2
    )
    model = BoringModel()

    (validated,) = trainer.validate(model)
    (tested,) = trainer.test(model)
    trainer.predict(model)

    for stage, results in (("validate", validated), ("test", tested)):
        for name in ("energy_kwh", "co2_kg", "energy_kwh_total", "co2_kg_total", "duration_s"):
            assert results[f"carbon/{stage}/{name}"] > 0
        assert results[f"carbon/{stage}/intensity_g_per_kwh"] == 100.0
    rows = csv_rows(logger)
    for stage in ("validate", "test", "predict"):
        logged = [row for row in rows if row.get(f"carbon/{stage}/energy_kwh")]
        assert len(logged) == 1, stage
    assert not epoch_rows(rows)  # no training keys from evaluation runs


def test_no_logger_warns_once_and_prints_the_totals(tmp_path, carbon_log):
    callback = EmissionsCallback(**{**OPTIONS, "verbose": True})
    make_trainer(tmp_path, [callback]).fit(BoringModel())
    warned = [r for r in carbon_log if r.levelname == "WARNING" and "no logger" in r.getMessage()]
    assert len(warned) == 1
    assert any("fit used" in record.getMessage() for record in carbon_log)


def test_an_exception_closes_the_interval_and_keeps_what_was_measured(tmp_path):
    class Failing(BoringModel):
        def training_step(self, batch, batch_idx):
            if self.current_epoch == 1 and batch_idx == 1:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    callback = EmissionsCallback(**OPTIONS)
    with pytest.raises(RuntimeError, match="boom"):
        make_trainer(tmp_path, [callback]).fit(Failing())
    summary = callback.session.last_summary
    assert summary.status == "failed"
    assert [iv.label for iv in summary.intervals] == ["epoch", "end"]
    assert summary.intervals[-1].device_j > 0  # the failed epoch's part is kept
    assert not callback.session.is_measuring


# -- the band, the work, embodied and water ---------------------------------------------------


def test_a_fit_has_its_band_its_energy_per_sample_embodied_and_water_and_the_ledger_keeps_them(
    tmp_path, capsys, monkeypatch
):
    from lightning.pytorch.demos.boring_classes import RandomDataset
    from torch.utils.data import DataLoader

    from carbonlog import water
    from carbonlog.cli import main
    from carbonlog.embodied import amortised_kg
    from carbonlog.report.rows import run_band
    from tests.fakes.pynvml_fake import FakeGpu, FakeNvml

    class Batches(BoringModel):  # 36 samples in batches of 8: the last one holds 4
        def train_dataloader(self):
            return DataLoader(RandomDataset(32, 36), batch_size=8)

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(profile=300.0)]))  # an H100
    logger = CSVLogger(tmp_path, name="work")
    path = tmp_path / "ledger.db"
    options = {
        **OPTIONS,
        "intensity": None,
        "location": "gcp:us-central1",
        "ledger": str(path),
        "gpus": [0],  # the fake's GPU, though the model trains on the CPU
        "power_w": {"cpu": 10.0, "ram": 1.0},
    }
    callback = EmissionsCallback(**options)
    make_trainer(tmp_path, [callback], logger, max_epochs=2, limit_train_batches=None).fit(
        Batches()
    )

    summary = callback.summary
    assert summary.samples == 2 * 36 and summary.tokens is None
    assert summary.energy_per_sample_j == pytest.approx(summary.energy_kwh * 3.6e6 / 72)
    assert summary.methods == {"gpu": "counter", "cpu": "model", "ram": "model"}
    band = summary.band
    assert band.energy_kwh > 0 and band.share > 0.5
    assert summary.band_j[band.component] == max(summary.band_j.values())
    assert band.method == summary.methods[band.component]
    hours = sum(iv.duration_s for iv in summary.intervals) / 3600  # one GPU: its device-hours
    assert summary.embodied_kg == pytest.approx(amortised_kg("H100 SXM", hours), rel=1e-6)
    it_kwh = summary.device_j / 3.6e6
    assert summary.water_l == pytest.approx(
        water.water_l(it_kwh, summary.energy_kwh, "gcp:us-central1")
    )
    for row in epoch_rows(csv_rows(logger)):  # metrics="full": per epoch too
        energy_j = float(row["carbon/energy_kwh"]) * 3.6e6
        assert float(row["carbon/energy_per_sample_j"]) == pytest.approx(energy_j / 36, rel=1e-5)

    with Ledger(path) as ledger:
        record = ledger.run(summary.run_id)
    assert (record.samples, record.water_l) == (72.0, pytest.approx(summary.water_l))
    assert run_band(record) == pytest.approx(band)
    assert main(["--ledger", str(path), "runs", "show", str(record.id)]) == 0
    shown = capsys.readouterr().out
    assert " ± " in shown and f"mostly the {band.component.upper()}'s" in shown
    assert "J per sample" in shown and "embodied" in shown
