"""What reaches Keras users' logs and loggers: the compact set by default (the progress line),
TensorBoard and W&B on the torch backend through the recipes of docs/quickstart/keras.md (run
as written, their files read back), MLflow's Keras callback, the warning for any callback
listed before carbonlog that reads the logs, and evaluate/predict around fit."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import logging  # noqa: E402
import re  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from carbonlog.integrations._keras_support import reads_logs, uses_second_argument  # noqa: E402
from carbonlog.integrations.keras import EmissionsCallback  # noqa: E402
from carbonlog.ledger import Ledger  # noqa: E402
from carbonlog.metrics import COMPACT_KEYS, KEYS  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
OPTIONS = {"intensity": 50.0, "verbose": False, "power_w": {"gpu": 100.0, "cpu": 10.0}}
QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart" / "keras.md"
EPOCHS = 3


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def recipe(marker: str) -> str:
    """The quickstart's python block that contains `marker`, as the page shows it."""
    text = QUICKSTART.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    (block,) = [b for b in blocks if marker in b]
    return textwrap.dedent(block)


def run_recipe(marker: str, model, x, y) -> dict:
    """Run the recipe with `model`, `x` and `y` defined, as a reader would; its namespace."""
    namespace = {"model": model, "x": x, "y": y}
    exec(compile(recipe(marker), str(QUICKSTART), "exec"), namespace)
    return namespace


# -- the compact set ------------------------------------------------------------------------


def test_the_progress_line_carries_the_compact_set_and_full_on_request(data, capsys):
    x, y = data
    line_carbon = {}
    for metrics in ("compact", "full"):
        callback = EmissionsCallback(metrics=metrics, ledger=False, **OPTIONS)
        tiny_model().fit(x, y, epochs=1, verbose=2, callbacks=[callback])
        (line,) = [row for row in capsys.readouterr().out.splitlines() if "loss" in row]
        line_carbon[metrics] = re.findall(r"carbon/([a-z0-9_]+): ", line)
    assert sorted(line_carbon["compact"]) == sorted(COMPACT_KEYS)
    assert set(KEYS) <= set(line_carbon["full"])


# -- TensorBoard, W&B and MLflow on the torch backend ----------------------------------------


def test_the_tensorboard_recipe_writes_the_carbon_keys_without_tensorflow(
    tmp_path, data, monkeypatch
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = data
    monkeypatch.chdir(tmp_path)
    model = tiny_model()
    run_recipe("class TensorBoardScalars", model, x, y)
    events = EventAccumulator(str(tmp_path / "runs" / "carbon"))
    events.Reload()
    history = model.history.history
    for key in ("carbon/co2_kg_total", "carbon/energy_kwh", "loss"):
        written = [event.value for event in events.Scalars(key)]
        assert written == pytest.approx(history[key], rel=1e-6), key
        assert [event.step for event in events.Scalars(key)] == list(range(10))


def test_the_wandb_recipe_logs_the_carbon_keys(tmp_path, data, monkeypatch):
    wandb = pytest.importorskip("wandb")
    pytest.importorskip("lightning")  # the offline run file's reader lives with its tests
    from tests.integration.test_lightning import wandb_history

    x, y = data
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    wandb.teardown()  # an earlier test's settings (its run directory) go with the singleton
    model = tiny_model()
    run_recipe("wandb.init", model, x, y)
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    rows = wandb_history(run_file)
    assert [row["epoch"] for row in rows] == list(range(10))
    assert [row["carbon/co2_kg_total"] for row in rows] == pytest.approx(
        model.history.history["carbon/co2_kg_total"]
    )


def test_mlflow_keras_callback_after_carbonlog_stores_the_keys(tmp_path, data, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow
    from mlflow.keras.callback import MlflowCallback

    x, y = data
    mlflow.set_tracking_uri(f"file:{tmp_path}/mlruns")
    with mlflow.start_run() as run:
        callbacks = [EmissionsCallback(ledger=False, **OPTIONS), MlflowCallback()]
        history = tiny_model().fit(x, y, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    mlflow.flush_async_logging()
    stored = mlflow.MlflowClient().get_metric_history(run.info.run_id, "carbon/co2_kg_total")
    assert [m.value for m in sorted(stored, key=lambda m: m.step)] == pytest.approx(
        history.history["carbon/co2_kg_total"]
    )


# -- callbacks listed before carbonlog --------------------------------------------------------


def test_any_callback_that_reads_the_logs_first_is_warned_of(tmp_path, data, carbon_warnings):
    pytest.importorskip("mlflow")
    from mlflow.keras.callback import MlflowCallback

    x, y = data
    seen = []
    lambda_logger = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append(dict(logs))
    )
    early = [lambda_logger, MlflowCallback(), keras.callbacks.BackupAndRestore(str(tmp_path))]
    callbacks = [*early, EmissionsCallback(ledger=False, **OPTIONS)]
    tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=callbacks)
    (warned,) = [r.getMessage() for r in carbon_warnings if "listed before" in r.getMessage()]
    assert warned.startswith("carbonlog: LambdaCallback, MlflowCallback listed before")
    assert not [key for key in seen[0] if key.startswith("carbon/")]  # what it is about


class Quiet(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1


class Loud(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print(sorted(logs))


class Nested(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.later = lambda: logs


@pytest.mark.parametrize(
    ("callback", "wanted"),
    [
        (keras.callbacks.CSVLogger("x.csv"), True),
        (keras.callbacks.History(), True),
        (keras.callbacks.RemoteMonitor(), True),
        (keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs)), True),
        (keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch)), False),
        (keras.callbacks.LambdaCallback(on_epoch_end=print), True),  # cannot tell: warn
        (keras.callbacks.LambdaCallback(on_train_end=print), False),
        (Loud(), True),
        (Nested(), True),
        (Quiet(), False),
        (keras.callbacks.BackupAndRestore("backup"), False),
        (keras.callbacks.TerminateOnNaN(), False),
        (keras.callbacks.LearningRateScheduler(lambda epoch: 0.1), False),
        (keras.callbacks.ProgbarLogger(), False),
        (keras.callbacks.EarlyStopping(monitor="carbon/co2_kg"), True),
        (keras.callbacks.EarlyStopping(monitor="val_loss"), False),
        (keras.callbacks.ModelCheckpoint("m.keras", monitor="carbon/co2_kg_total"), True),
    ],
)
def test_which_callbacks_read_the_logs(callback, wanted):
    assert reads_logs(callback, "carbon/") is wanted


def test_a_hook_that_takes_no_logs_never_reads_them():
    assert not uses_second_argument(lambda epoch: None)
    assert uses_second_argument(lambda *args: args)


# -- evaluate and predict around fit -----------------------------------------------------------


def test_evaluate_is_measured_when_passed_the_callback_also_after_a_fit_that_raised(data):
    x, y = data

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("boom")

    model, callback = tiny_model(), EmissionsCallback(**OPTIONS)
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, epochs=EPOCHS, verbose=0, callbacks=[callback, Crash()])

    model.evaluate(x, y, verbose=0)  # not passed the callback: Keras tells it nothing
    assert callback.session.is_measuring and "test" not in callback.totals

    seen = []
    probe = keras.callbacks.LambdaCallback(on_test_end=lambda logs: seen.append(dict(logs)))
    returned = model.evaluate(x, y, verbose=0, callbacks=[callback, probe], return_dict=True)
    model.predict(x, verbose=0, callbacks=[callback])
    test, predict = callback.totals["test"], callback.totals["predict"]
    assert test["carbon/test/co2_kg"] > 0 and predict["carbon/predict/co2_kg"] > 0
    assert seen[0]["carbon/test/co2_kg"] == test["carbon/test/co2_kg"]
    assert seen[0]["loss"] == returned["loss"]
    with Ledger(Path(os.environ["CARBONLOG_HOME"]) / "ledger.sqlite3") as ledger:
        runs = [(run.stage, run.status) for run in reversed(ledger.runs())]
    assert runs == [("fit", "interrupted"), ("test", "completed"), ("predict", "completed")]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_callback_listed_late_is_said_on_global_rank_zero_alone(
    data, carbon_log, monkeypatch, rank
):
    x, y = data
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    early = keras.callbacks.CSVLogger(os.devnull)
    tiny_model().fit(
        x, y, epochs=1, verbose=0, callbacks=[early, EmissionsCallback(ledger=False, **OPTIONS)]
    )
    said = [r for r in carbon_log if "listed before" in r.getMessage()]
    assert [r.levelno for r in said] == ([logging.WARNING] if rank == 0 else [])
