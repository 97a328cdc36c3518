"""GPU accuracy check, for a machine with an NVIDIA GPU (Volta or newer).

Part 1 runs CUDA work in busy and idle windows of 0.5 to 30 s, marks a carbonlog interval per
window, and prints each interval's GPU energy against the raw NVML counter deltas read by
this script at the same edges. Part 2 trains a tiny model with each framework's callback
(Lightning, Transformers, Keras with KERAS_BACKEND=torch) on CUDA and compares per-epoch GPU
energy with counter deltas read at each epoch's start, and the fit's time with and without
the callback.

Run: python benchmarks/gpu_check.py [--quick] [--out FILE.json]. Never changes the card's
settings (no clocks, no power limit).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

WINDOWS_S = [
    ("busy", 0.5),
    ("idle", 1.0),
    ("busy", 2.0),
    ("idle", 4.0),
    ("busy", 10.0),
    ("busy", 30.0),
]
QUICK_WINDOWS_S = [("busy", 0.5), ("idle", 1.0), ("busy", 2.0), ("idle", 2.0), ("busy", 5.0)]


def counter_mj(handle) -> int:
    import pynvml

    return pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)


def busy(seconds: float) -> None:
    """bf16 matrix products until `seconds` have passed (synchronised)."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()


def windows_check(handle, windows) -> list[dict]:
    """carbonlog interval vs raw counter delta, window by window."""
    import torch

    from carbonlog.tracking import Tracker

    tracker = Tracker(intensity=100.0, gpus=[0], cpu=None, ram=False, ledger=False).start()
    rows = []
    for kind, seconds in windows:
        torch.cuda.synchronize()
        before_mj = counter_mj(handle)
        if kind == "busy":
            busy(seconds)
        else:
            time.sleep(seconds)
        interval = tracker.mark(f"{kind} {seconds}s")
        after_mj = counter_mj(handle)
        truth_j = (after_mj - before_mj) / 1000
        rows.append(
            {
                "window": f"{kind} {seconds} s",
                "carbonlog_j": interval.gpu_j,
                "counter_j": truth_j,
                "error_pct": 100 * (interval.gpu_j - truth_j) / truth_j if truth_j else None,
            }
        )
    tracker.stop()
    return rows


class CounterEdges:
    """NVML counter readings at each epoch's start, after a device synchronize."""

    def __init__(self, handle):
        self.handle = handle
        self.edges_mj: list[int] = []

    def read(self) -> None:
        import torch

        torch.cuda.synchronize()
        self.edges_mj.append(counter_mj(self.handle))

    def deltas_j(self) -> list[float]:
        return [(b - a) / 1000 for a, b in zip(self.edges_mj, self.edges_mj[1:], strict=False)]


def fit_lightning(callbacks, edges, epochs: int) -> None:
    import lightning.pytorch as pl
    import torch

    class Heavy(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4096, 4096)

        def training_step(self, batch, _):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    class Edges(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            edges.read()

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(8192, 4096)), batch_size=256
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="gpu",
        devices=1,
        logger=False,
        callbacks=[*callbacks, Edges()],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(Heavy(), loader)


def fit_transformers(callbacks, edges, epochs: int) -> None:
    import tempfile

    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Heavy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4096, 4096)

        def forward(self, x, labels=None):
            return {"loss": self.layer(x).pow(2).mean()}

    class Edges(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            edges.read()

    data = [{"x": torch.randn(4096)} for _ in range(4096)]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            num_train_epochs=epochs,
            per_device_train_batch_size=256,
            report_to=[],
            save_strategy="no",
            logging_steps=8,
            disable_tqdm=True,
        )
        Trainer(
            model=Heavy(), args=args, train_dataset=data, callbacks=[*callbacks, Edges()]
        ).train()


def fit_keras(callbacks, edges, epochs: int) -> None:
    import keras
    import numpy as np

    class Edges(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            edges.read()

    model = keras.Sequential(
        [keras.Input((4096,)), keras.layers.Dense(4096), keras.layers.Dense(1)]
    )
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.rand(8192, 4096).astype("float32")
    model.fit(
        x,
        np.zeros((8192, 1), "float32"),
        batch_size=256,
        epochs=epochs,
        verbose=0,
        callbacks=[*callbacks, Edges()],
    )


FITS = {"lightning": fit_lightning, "transformers": fit_transformers, "keras": fit_keras}


def framework_check(framework: str, handle, epochs: int) -> dict:
    """Per-epoch GPU energy from the framework's callback against counter deltas between
    epoch starts, and the fit's time with and without the callback."""
    import importlib

    callback_class = importlib.import_module(
        f"carbonlog.integrations.{framework}"
    ).EmissionsCallback
    fit = FITS[framework]
    t0 = time.perf_counter()
    fit([], CounterEdges(handle), epochs)
    baseline_s = time.perf_counter() - t0
    edges, emissions = CounterEdges(handle), callback_class(intensity=100.0, ledger=False)
    t0 = time.perf_counter()
    fit([emissions], edges, epochs)
    measured_s = time.perf_counter() - t0
    epochs_j = [iv.gpu_j for iv in emissions.summary.intervals if iv.label == "epoch"]
    return {
        "framework": framework,
        "epochs_carbonlog_j": epochs_j,
        "epochs_counter_j_between_epoch_starts": edges.deltas_j(),
        "fit_s_without": baseline_s,
        "fit_s_with": measured_s,
        "overhead_ratio": measured_s / baseline_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (about 15 s)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=os.environ.get("OUT", ".") + "/gpu_check.json")
    args = parser.parse_args()

    import pynvml
    import torch

    pynvml.nvmlInit()
    torch.cuda.init()
    uuid = str(torch.cuda.get_device_properties(0).uuid)
    handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
    name = pynvml.nvmlDeviceGetName(handle)
    print(f"GPU: {name}, driver {pynvml.nvmlSystemGetDriverVersion()}")

    results = {
        "gpu": name,
        "windows": windows_check(handle, QUICK_WINDOWS_S if args.quick else WINDOWS_S),
    }
    print(f"{'window':<14}{'carbonlog J':>14}{'counter J':>12}{'error %':>10}")
    for row in results["windows"]:
        error = f"{row['error_pct']:.2f}" if row["error_pct"] is not None else "-"
        print(f"{row['window']:<14}{row['carbonlog_j']:>14.1f}{row['counter_j']:>12.1f}{error:>10}")
    for framework in FITS:
        try:
            results[framework] = framework_check(framework, handle, args.epochs)
        except ImportError as exc:  # a framework not installed on this machine
            results[framework] = {"skipped": str(exc)}
        print(json.dumps({framework: results[framework]}, indent=2))
    with open(args.out, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
