"""Keras 3 adapter: real fits of a tiny Dense model on random data, torch backend, CPU.

KERAS_BACKEND is set here, before the first `import keras`, because the backend is fixed at
import and Keras defaults to TensorFlow (not installed); a backend the user set wins.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import csv  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from carbonlog.integrations._keras_support import reads_logs  # noqa: E402
from carbonlog.integrations.keras import EmissionsCallback  # noqa: E402
from carbonlog.metrics import KEYS  # noqa: E402

# Keras' torch backend converts tensors with np.array(copy=False): noise from numpy 2, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

GPU_W, CPU_W, RAM_W = 100.0, 10.0, 1.0
G_PER_KWH = 50.0
J_PER_KWH = 3.6e6
NVML_SHIM = Path(__file__).resolve().parents[1] / "fakes" / "nvml_shim"
OPTIONS = {
    "intensity": G_PER_KWH,
    "ledger": False,
    "verbose": False,
    "power_w": {"gpu": GPU_W, "cpu": CPU_W, "ram": RAM_W},
    "metrics": "full",
}
CARBON_KEYS = [f"carbon/{name}" for name in KEYS] + ["carbon/forecast_co2_kg"]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")


def tiny_model():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


class LogsProbe(keras.callbacks.Callback):
    """Keeps copies of the logs that reach it, to see what callbacks after ours receive."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, list[dict]] = {"epoch": [], "test": [], "train_end": []}

    def on_epoch_end(self, epoch, logs=None):
        self.seen["epoch"].append(dict(logs))

    def on_test_end(self, logs=None):
        self.seen["test"].append(dict(logs))

    def on_train_end(self, logs=None):
        self.seen["train_end"].append(dict(logs))


def test_history_and_csv_logger_hold_every_key_every_epoch(tmp_path, data):
    x, y = data
    csv_path = tmp_path / "log.csv"
    callback = EmissionsCallback(**OPTIONS)
    history = tiny_model().fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        validation_data=(x, y),
        callbacks=[callback, keras.callbacks.CSVLogger(str(csv_path))],
    )

    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3
    for key in CARBON_KEYS:
        assert len(history.history[key]) == 3, key
        assert [float(row[key]) for row in rows] == pytest.approx(history.history[key]), key
    assert "test" not in callback.totals  # validation belonged to its epoch

    h = {key: np.array(values) for key, values in history.history.items()}
    assert h["carbon/energy_kwh"].sum() == pytest.approx(h["carbon/energy_kwh_total"][-1])
    assert h["carbon/co2_kg"].sum() == pytest.approx(h["carbon/co2_kg_total"][-1])
    # constant wattage: each component is watts x the epoch's seconds (10 ms slack at edges)
    for name, watts in (("gpu", GPU_W), ("cpu", CPU_W), ("ram", RAM_W)):
        assert h[f"carbon/{name}_kwh"] * J_PER_KWH == pytest.approx(
            watts * h["carbon/duration_s"], abs=watts * 0.01
        )
    assert h["carbon/co2_kg"] == pytest.approx(h["carbon/energy_kwh"] * G_PER_KWH / 1000)
    assert (h["carbon/intensity_g_per_kwh"] == G_PER_KWH).all()
    fit = callback.totals["fit"]
    assert fit["carbon/energy_kwh_total"] >= h["carbon/energy_kwh_total"][-1]


def test_pue_and_intensity_are_arguments_as_in_the_other_adapters(data):
    x, y = data
    power_w = OPTIONS["power_w"]
    callback = EmissionsCallback(
        None, 2.0, 80.0, ledger=False, verbose=False, power_w=power_w, metrics="full"
    )
    h = tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[callback]).history
    components = sum(h[f"carbon/{name}_kwh"][0] for name in ("gpu", "cpu", "ram"))
    assert h["carbon/energy_kwh"][0] == pytest.approx(components * 2.0)
    assert h["carbon/intensity_g_per_kwh"][0] == 80.0


def test_warns_when_a_logger_is_listed_before_it(tmp_path, data, carbon_log):
    x, y = data
    early = keras.callbacks.CSVLogger(str(tmp_path / "early.csv"))
    tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[early, EmissionsCallback(**OPTIONS)])
    warnings = [r.getMessage() for r in carbon_log if r.levelno == logging.WARNING]
    assert any("CSVLogger listed before EmissionsCallback" in m for m in warnings), warnings
    with open(tmp_path / "early.csv", newline="") as file:
        assert "carbon/energy_kwh" not in next(csv.reader(file))  # what the warning is about

    carbon_log.clear()
    late = keras.callbacks.CSVLogger(str(tmp_path / "late.csv"))
    tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[EmissionsCallback(**OPTIONS), late])
    assert not [r for r in carbon_log if "listed before" in r.getMessage()]


def test_reads_logs_knows_loggers_and_monitors():
    assert reads_logs(keras.callbacks.CSVLogger("x.csv"), "carbon/")
    assert reads_logs(keras.callbacks.EarlyStopping(monitor="carbon/co2_kg"), "carbon/")
    assert not reads_logs(keras.callbacks.EarlyStopping(monitor="val_loss"), "carbon/")
    assert not reads_logs(keras.callbacks.ProgbarLogger(), "carbon/")


def test_resume_with_initial_epoch_continues_totals_from_the_sidecar(tmp_path, data):
    x, y = data
    state_path = tmp_path / "carbon.json"
    first = tiny_model()
    part1 = first.fit(
        x, y, epochs=2, verbose=0, callbacks=[EmissionsCallback(state_path=state_path, **OPTIONS)]
    )
    state = json.loads(state_path.read_text())
    assert state["epochs_done"] == 2
    assert state["energy_kwh_total"] >= part1.history["carbon/energy_kwh_total"][-1]

    part2 = first.fit(
        x,
        y,
        epochs=4,
        initial_epoch=2,
        verbose=0,
        callbacks=[EmissionsCallback(state_path=state_path, **OPTIONS)],
    )
    energy = part2.history["carbon/energy_kwh"]
    totals = part2.history["carbon/energy_kwh_total"]
    assert len(energy) == 2
    assert totals[0] == pytest.approx(state["energy_kwh_total"] + energy[0])
    assert totals[1] == pytest.approx(state["energy_kwh_total"] + sum(energy))
    assert json.loads(state_path.read_text())["epochs_done"] == 4


def test_same_callback_continues_totals_without_a_sidecar(data):
    x, y = data
    model, callback = tiny_model(), EmissionsCallback(**OPTIONS)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    done_kwh = callback.totals["fit"]["carbon/energy_kwh_total"]
    history = model.fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[callback])
    h = history.history
    assert h["carbon/energy_kwh_total"][-1] == pytest.approx(done_kwh + h["carbon/energy_kwh"][-1])


def test_resume_after_backup_and_restore(tmp_path, data):
    x, y = data
    state_path, backup = tmp_path / "carbon.json", tmp_path / "backup"

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("preempted")

    with pytest.raises(RuntimeError, match="preempted"):
        tiny_model().fit(
            x,
            y,
            epochs=4,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(str(backup)),
                EmissionsCallback(state_path=state_path, **OPTIONS),
                Crash(),
            ],
        )
    before = json.loads(state_path.read_text())
    assert before["epochs_done"] == 2

    history = tiny_model().fit(
        x,
        y,
        epochs=4,
        verbose=0,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(backup)),
            EmissionsCallback(state_path=state_path, **OPTIONS),
        ],
    )
    energy = history.history["carbon/energy_kwh"]
    assert len(energy) == 2  # epochs 2 and 3 only
    assert history.history["carbon/energy_kwh_total"][-1] == pytest.approx(
        before["energy_kwh_total"] + sum(energy)
    )


def test_resume_without_sidecar_says_totals_restart(data, carbon_log):
    x, y = data
    history = tiny_model().fit(
        x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[EmissionsCallback(**OPTIONS)]
    )
    assert any("no state_path is set" in r.getMessage() for r in carbon_log)
    h = history.history
    assert h["carbon/energy_kwh_total"][-1] == pytest.approx(h["carbon/energy_kwh"][-1])


def test_unreadable_sidecar_restarts_totals_without_breaking_the_fit(tmp_path, data, carbon_log):
    x, y = data
    state_path = tmp_path / "carbon.json"
    state_path.write_text('{"epochs_done": 1}')
    callback = EmissionsCallback(state_path=state_path, **OPTIONS)
    history = tiny_model().fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[callback])
    assert any("totals start over" in r.getMessage() for r in carbon_log)
    h = history.history
    assert h["carbon/energy_kwh_total"][-1] == pytest.approx(h["carbon/energy_kwh"][-1])
    assert json.loads(state_path.read_text())["epochs_done"] == 1  # rewritten, valid again


def test_evaluate_and_predict_report_their_energy(data):
    x, y = data
    callback, probe = EmissionsCallback(**OPTIONS), LogsProbe()
    model = tiny_model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback, probe])
    assert probe.seen["train_end"][0]["carbon/energy_kwh_total"] > 0

    model.evaluate(x, y, verbose=0, callbacks=[callback, probe])
    test = callback.totals["test"]
    assert probe.seen["test"][-1]["carbon/test/energy_kwh"] == test["carbon/test/energy_kwh"]
    assert test["carbon/test/energy_kwh"] > 0
    assert test["carbon/test/energy_kwh"] * J_PER_KWH == pytest.approx(
        (GPU_W + CPU_W + RAM_W) * test["carbon/test/duration_s"], abs=(GPU_W + CPU_W + RAM_W) * 0.01
    )
    assert test["carbon/test/co2_kg"] == pytest.approx(
        test["carbon/test/energy_kwh"] * G_PER_KWH / 1000
    )

    model.predict(x, verbose=0, callbacks=[callback])
    predict = callback.totals["predict"]
    assert predict["carbon/predict/energy_kwh"] > 0
    assert predict["carbon/predict/co2_kg"] == pytest.approx(
        predict["carbon/predict/energy_kwh"] * G_PER_KWH / 1000
    )


def test_budget_stop_ends_fit_early(data):
    x, y = data
    callback = EmissionsCallback(budget_kwh=1e-15, on_budget="stop", **OPTIONS)
    history = tiny_model().fit(x, y, epochs=5, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 1


@pytest.mark.parametrize(
    "options, error",
    [
        ({"on_budget": "explode"}, ValueError),
        ({"budget_kwh": -1.0}, ValueError),
        ({"pue": 0.5}, ValueError),
        ({"intensity": -1.0}, ValueError),
        ({"state_path": 3}, TypeError),
        ({"prefix": 3}, TypeError),
    ],
)
def test_bad_options_fail_at_construction(options, error):
    with pytest.raises(error):
        EmissionsCallback(**{**OPTIONS, **options})


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["KERAS_BACKEND"] = sys.argv[1]
    import keras, numpy as np
    if sys.argv[1] == "torch" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    from carbonlog.integrations.keras import EmissionsCallback

    rank = os.environ.get("RANK", "0")
    x = np.random.default_rng(int(rank)).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = EmissionsCallback(
        intensity=50.0, ledger=False, verbose=False, state_path=sys.argv[2] + f".rank{rank}",
        power_w={"cpu": 10.0, "ram": 1.0}, metrics="full",
    )
    # each epoch outlasts two 100 ms ticks of the fake NVML, so a counted GPU would show
    slow = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: time.sleep(0.25))
    history = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[callback, slow])
    with open(sys.argv[2] + f".history{rank}", "w") as file:
        json.dump(history.history, file)
    """
)


def _run_workers(tmp_path, backend: str, world_size: int, fake_gpus: int = 0) -> list[dict]:
    """Fit in `world_size` fresh processes; with `fake_gpus`, NVML shows that many 300 W GPUs."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    paths = [str(NVML_SHIM)] if fake_gpus else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths + [p for p in sys.path if p]),
        "CARBONLOG_FAKE_NVML_GPUS": str(fake_gpus),
        "CARBONLOG_FAKE_NVML_WATTS": "300",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(world_size),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), backend, str(out)],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(world_size)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output
    return [json.loads(Path(f"{out}.history{rank}").read_text()) for rank in range(world_size)]


@pytest.mark.slow
def test_ddp_ranks_share_one_sum_and_only_rank_zero_writes(tmp_path):
    rank0, rank1 = _run_workers(tmp_path, "torch", world_size=2, fake_gpus=2)
    # both ranks train on the CPU: the two (fake, 300 W) GPUs are idle and not counted;
    # rank 1 is not its node's local rank 0: the one sum is rank 0's host energy
    assert rank0["carbon/energy_kwh"] == rank1["carbon/energy_kwh"]
    assert rank0["carbon/energy_kwh_total"] == rank1["carbon/energy_kwh_total"]
    assert rank0["carbon/gpu_kwh"] == [0.0, 0.0]
    cpu_j = np.array(rank0["carbon/cpu_kwh"]) * J_PER_KWH
    assert cpu_j == pytest.approx(10.0 * np.array(rank0["carbon/duration_s"]), rel=0.05)
    assert (tmp_path / "run.rank0").exists()
    assert not (tmp_path / "run.rank1").exists()


def test_jax_backend(tmp_path):
    pytest.importorskip("jax")
    (history,) = _run_workers(tmp_path, "jax", world_size=1)
    assert len(history["carbon/energy_kwh"]) == 2
    total = history["carbon/energy_kwh_total"][-1]
    assert sum(history["carbon/energy_kwh"]) == pytest.approx(total)


# -- the band, the work, embodied and water ---------------------------------------------------


def test_a_fit_has_its_band_its_energy_per_sample_and_water_and_the_ledger_keeps_them(
    tmp_path, data
):
    from carbonlog import water
    from carbonlog.ledger import Ledger
    from carbonlog.report.rows import run_band

    x, y = data  # 64 samples
    path = tmp_path / "ledger.db"
    options = {
        **OPTIONS,
        "intensity": None,
        "location": "gcp:us-central1",
        "ledger": str(path),
        "gpus": None,  # a CPU run
        "power_w": {"cpu": CPU_W, "ram": RAM_W},
    }
    callback = EmissionsCallback(**options)
    history = tiny_model().fit(x, y, epochs=2, batch_size=24, verbose=0, callbacks=[callback])

    summary = callback.summary
    assert summary.samples == 2 * 64  # batches of 24, 24 and 16
    assert summary.energy_per_sample_j == pytest.approx(summary.energy_kwh * J_PER_KWH / 128)
    per_sample = history.history["carbon/energy_per_sample_j"]  # metrics="full": per epoch
    energy_j = np.array(history.history["carbon/energy_kwh"]) * J_PER_KWH
    assert per_sample == pytest.approx(energy_j / 64)
    assert summary.methods == {"cpu": "model", "ram": "model"}
    assert summary.band.component == "cpu" and summary.band.energy_kwh > 0  # 10 W against 1 W
    assert summary.embodied_kg is None  # a CPU run: the table has no row for it
    it_kwh = summary.device_j / J_PER_KWH
    assert summary.water_l == pytest.approx(
        water.water_l(it_kwh, summary.energy_kwh, "gcp:us-central1")
    )
    with Ledger(path) as ledger:
        record = ledger.run(summary.run_id)
    assert record.samples == 128.0 and run_band(record) == pytest.approx(summary.band)
