"""Forecast and carbon budget in all three frameworks, on a steady workload.

Each framework trains a tiny model whose every batch takes a fixed 80 ms (a sleeping hook)
with constant wattage, so every epoch costs the same: the forecast after epoch 2 of 10 must
land within 10 % of the final total; a budget with on_budget="stop" ends the fit early
through the framework and the ledger says why; on_budget="warn" trains to the end.
"""

from __future__ import annotations

import os
import time

import pytest

from carbonlog.ledger import Ledger
from carbonlog.units import J_PER_KWH

EPOCHS = 10
BATCHES = 4
BATCH_S = 0.08
WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
EPOCH_KWH = sum(WATTS.values()) * BATCHES * BATCH_S / J_PER_KWH
OPTIONS = {"intensity": 100.0, "power_w": WATTS, "verbose": False}


def fit_lightning(callback, tmp_path):
    import lightning.pytorch as pl
    import torch

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            time.sleep(BATCH_S)
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.TensorDataset(torch.randn(BATCHES * 2, 4))
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=2))
    return trainer.current_epoch


def fit_transformers(callback, tmp_path):
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x, labels):
            return {"loss": (self.layer(x).squeeze(-1) - labels).pow(2).mean()}

    class Steady(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(BATCH_S)

    data = [{"x": torch.randn(4), "labels": torch.tensor(0.0)} for _ in range(BATCHES * 2)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(model=Tiny(), args=args, train_dataset=data, callbacks=[callback, Steady()])
    trainer.train()
    return round(trainer.state.epoch)


def fit_keras(callback, tmp_path):
    import keras
    import numpy as np

    class Steady(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(BATCH_S)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(
        np.random.rand(BATCHES * 2, 4),
        np.random.rand(BATCHES * 2, 1),
        batch_size=2,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[callback, Steady()],
    )
    return len(history.epoch)


def lightning_callback(**options):
    from carbonlog.integrations.lightning import EmissionsCallback

    return EmissionsCallback(**options)


def transformers_callback(**options):
    from carbonlog.integrations.transformers import EmissionsCallback

    return EmissionsCallback(**options)


def keras_callback(**options):
    from carbonlog.integrations.keras import EmissionsCallback

    return EmissionsCallback(**options)


FRAMEWORKS = {
    "lightning": (lightning_callback, fit_lightning),
    "transformers": (transformers_callback, fit_transformers),
    "keras": (keras_callback, fit_keras),
}


def ledger_status(run_id: int) -> tuple[str, str | None]:
    with Ledger(os.path.join(os.environ["CARBONLOG_HOME"], "ledger.sqlite3")) as ledger:
        run = ledger.run(run_id)
    return run.status, run.stop_reason


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_forecast_after_two_of_ten_epochs_is_within_ten_percent(framework, tmp_path):
    make, fit = FRAMEWORKS[framework]
    callback = make(**OPTIONS)
    assert fit(callback, tmp_path) == EPOCHS
    summary = callback.summary
    epochs = [iv for iv in summary.intervals if iv.label == "epoch"]
    assert len(epochs) == EPOCHS
    assert epochs[0].forecast_co2_kg is not None
    assert epochs[1].forecast_co2_kg == pytest.approx(summary.co2_kg, rel=0.10)
    assert epochs[1].forecast_energy_kwh == pytest.approx(summary.energy_kwh, rel=0.10)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_budget_stops_training_early_and_the_ledger_says_why(framework, tmp_path):
    make, fit = FRAMEWORKS[framework]
    callback = make(budget_kwh=3.5 * EPOCH_KWH, on_budget="stop", **OPTIONS)
    epochs_run = fit(callback, tmp_path)
    assert 2 <= epochs_run < EPOCHS
    status, reason = ledger_status(callback.summary.run_id)
    assert status == "budget"
    assert reason.startswith("budget:") and "kWh" in reason


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_warn_budget_keeps_training(framework, tmp_path, caplog):
    make, fit = FRAMEWORKS[framework]
    callback = make(budget_kwh=3.5 * EPOCH_KWH, on_budget="warn", **OPTIONS)
    assert fit(callback, tmp_path) == EPOCHS
    status, reason = ledger_status(callback.summary.run_id)
    assert status == "completed" and reason.startswith("budget:")
    assert any("training goes on" in r.getMessage() for r in caplog.records)
