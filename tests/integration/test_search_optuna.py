"""Hyperparameter searches with real Optuna: a Lightning study of three trials (one completed,
one that fails, one pruned by the pruner's own callback protocol) and the Trainer's
hyperparameter_search with the Optuna backend; each trial's run carries the study's name, its
number and parameters, and the ledger's search total is the sum of every trial's intervals."""

from __future__ import annotations

import math

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("lightning")

import torch  # noqa: E402
from lightning.pytorch import Callback, Trainer  # noqa: E402
from lightning.pytorch.demos.boring_classes import BoringModel  # noqa: E402

from carbonlog.cli import main  # noqa: E402
from carbonlog.integrations.lightning import EmissionsCallback  # noqa: E402
from carbonlog.ledger import Ledger  # noqa: E402

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
FAILS, PRUNED = 1, 2
"""The trial whose training raises, and the one the pruner stops after its first epoch."""

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Scored(BoringModel):
    """BoringModel logging its validation loss, with the trial's learning rate; `fail` makes
    its second epoch's training raise, as a diverging run does."""

    def __init__(self, lr: float, fail: bool):
        super().__init__()
        self.lr, self.fail = lr, fail

    def training_step(self, batch, batch_idx):
        if self.fail and self.current_epoch == 1:
            raise RuntimeError("loss is NaN")
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        loss = self.step(batch)
        self.log("val_loss", loss)
        return {"x": loss}

    def configure_optimizers(self):
        return torch.optim.SGD(self.layer.parameters(), lr=self.lr)


class Pruning(Callback):
    """What optuna-integration's PyTorchLightningPruningCallback does: report the monitored
    value at each validation end, raise optuna.TrialPruned when the pruner says so."""

    def __init__(self, trial):
        self.trial = trial

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self.trial.report(float(trainer.callback_metrics["val_loss"]), trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned")


class PruneOne(optuna.pruners.BasePruner):
    """Prunes trial PRUNED, at its first report."""

    def prune(self, study, trial) -> bool:
        return trial.number == PRUNED


@pytest.fixture
def lightning_study(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        callback = EmissionsCallback(
            intensity=100.0, power_w=WATTS, ledger=str(ledger), verbose=False, trial=trial
        )
        trainer = Trainer(
            max_epochs=3,
            limit_train_batches=2,
            limit_val_batches=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
            callbacks=[callback, Pruning(trial)],
        )
        trainer.fit(Scored(lr, fail=trial.number == FAILS))
        return float(trainer.callback_metrics["val_loss"])

    study = optuna.create_study(study_name="lr-search", pruner=PruneOne())
    study.optimize(objective, n_trials=3, catch=(RuntimeError,))
    return study, ledger


def test_each_lightning_trial_run_carries_the_study_and_its_trial(lightning_study):
    study, path = lightning_study
    with Ledger(path) as ledger:
        runs = sorted(ledger.runs(), key=lambda r: r.id)
    assert [r.search_id for r in runs] == ["lr-search"] * 3
    assert [r.trial for r in runs] == ["0", "1", "2"]
    assert [r.trial_params for r in runs] == [t.params for t in study.trials]
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL] + [
        optuna.trial.TrialState.PRUNED
    ]
    assert [r.status for r in runs] == ["completed", "failed", "interrupted"]
    # pruned in its first validation, before the epoch's edge: its energy is the run's last
    # interval; the failed and the pruned trials cost energy all the same
    assert [r.epochs for r in runs] == [3, 1, 0]
    assert all(r.co2_kg > 0 for r in runs)


def test_the_search_total_adds_every_trial_and_names_the_best(lightning_study):
    study, path = lightning_study
    with Ledger(path) as ledger:
        (search,) = ledger.searches(objective="val_loss", direction="minimize")
        runs = ledger.runs()
        intervals_kg = sum(iv.co2_kg for r in runs for iv in ledger.intervals(r.id))
    assert search.search_id == "lr-search"
    assert (search.trials, search.runs) == (3, 3)
    assert search.statuses == {"completed": 1, "failed": 1, "interrupted": 1}
    assert search.co2_kg == pytest.approx(intervals_kg, rel=1e-12)
    assert search.co2_kg == pytest.approx(sum(r.co2_kg for r in runs), rel=1e-12)
    assert search.co2_kg_per_trial == pytest.approx(search.co2_kg / 3)
    best_run = next(r for r in runs if r.trial == str(study.best_trial.number))
    assert search.best_trial == str(study.best_trial.number)
    assert search.best_value == pytest.approx(study.best_value, rel=1e-6)
    assert search.best_co2_kg == pytest.approx(best_run.co2_kg)
    assert 0 < search.best_co2_kg < search.co2_kg


def test_runs_by_search_prints_the_total_and_the_best_trial(lightning_study, capsys):
    _, path = lightning_study
    assert main(["runs", "--by", "search", "--ledger", str(path), "--objective", "val_loss"]) == 0
    out = capsys.readouterr().out
    assert "lr-search" in out and "val_loss" in out and "minimize" in out
    assert main(["runs", "--by", "search", "--ledger", str(path)]) == 0
    assert "no objective named" in capsys.readouterr().out


def test_the_trainer_hyperparameter_search_marks_each_trial(tmp_path):
    pytest.importorskip("transformers")
    from transformers import Trainer as HFTrainer
    from transformers_ddp_script import Tokens, tiny_bert, training_args

    from carbonlog.integrations.transformers import EmissionsCallback as HFCallback

    ledger = tmp_path / "ledger.sqlite3"
    callback = HFCallback(intensity=100.0, power_w=WATTS, ledger=str(ledger), verbose=False)
    trainer = HFTrainer(
        model_init=lambda trial: tiny_bert(),
        args=training_args(tmp_path / "out", num_train_epochs=1, save_strategy="no"),
        train_dataset=Tokens(16),
        eval_dataset=Tokens(8, seed=1),
        callbacks=[callback],
    )

    def space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)}

    best = trainer.hyperparameter_search(
        hp_space=space, backend="optuna", n_trials=3, study_name="hf-search", pruner=PruneOne()
    )
    with Ledger(ledger) as read:
        fits = sorted((r for r in read.runs() if r.stage == "fit"), key=lambda r: r.id)
        (search,) = read.searches(objective="eval_loss")
    assert [(r.search_id, r.trial) for r in fits] == [("hf-search", str(n)) for n in range(3)]
    assert all(set(r.trial_params) == {"learning_rate"} for r in fits)
    # the Trainer ends the trial it prunes (after its first evaluation), then raises
    assert [r.status for r in fits] == ["completed", "completed", "interrupted"]
    assert search.statuses == {"completed": 2, "interrupted": 1}
    assert search.trials == 3 and search.direction == "minimize"
    assert search.co2_kg == pytest.approx(sum(r.co2_kg for r in read_all(ledger)), rel=1e-12)
    assert search.best_trial == best.run_id
    assert math.isclose(search.best_value, best.objective, rel_tol=1e-6)


def read_all(path):
    with Ledger(path) as ledger:
        return ledger.runs()


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # numpy 2
def test_a_keras_study_marks_each_trial(tmp_path):
    keras = pytest.importorskip("keras")
    import numpy as np

    from carbonlog.integrations.keras import EmissionsCallback as KerasCallback

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    ledger = tmp_path / "ledger.sqlite3"

    def objective(trial) -> float:
        units = trial.suggest_int("units", 2, 8)
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(1)]
        )
        model.compile(optimizer="sgd", loss="mse")
        callback = KerasCallback(
            intensity=100.0, power_w=WATTS, ledger=str(ledger), verbose=False, trial=trial
        )
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
        return history.history["loss"][-1]

    study = optuna.create_study(study_name="units-search")
    study.optimize(objective, n_trials=2)
    with Ledger(ledger) as read:
        runs = sorted(read.runs(), key=lambda r: r.id)
        (search,) = read.searches(objective="loss")
    assert [(r.search_id, r.trial, r.trial_params) for r in runs] == [
        ("units-search", str(t.number), t.params) for t in study.trials
    ]
    assert search.best_trial == str(study.best_trial.number)
    assert search.co2_kg == pytest.approx(sum(r.co2_kg for r in runs), rel=1e-12)
