"""carbonlog against its peers in one run: what each tracker adds to a whole fit's wall time.

The same Lightning fit (or Hugging Face train()) runs with no tracker, carbonlog's callback,
CodeCarbon (Lightning: OfflineEmissionsTracker start_task/stop_task per epoch from a callback;
Transformers: report_to="codecarbon") and carbontracker (epoch_start/epoch_end), alternating
run by run so that the machine's drift hits all alike, each at a short and a long length. A
line through (epochs, fit seconds) splits each tracker's cost into a fixed start cost (the
intercept) and a per-epoch cost (the slope); the figures are the differences from no tracker.
The resolution is the baseline's own spread: the interquartile range of its per-epoch slope.

Run: pip install -e ".[bench]"; python benchmarks/overhead_vs_peers.py [--framework lightning]
[--repeats 5] [--short 2] [--long 8] [--batches 256]. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import tempfile
import warnings

from timing import quartiles

TRACKERS = ("none", "carbonlog", "codecarbon", "carbontracker")


def lightning_callback(name: str, epochs: int, root: str):
    """The per-epoch use of each tracker from a Lightning callback (None: no tracker)."""
    import lightning

    if name == "carbonlog":
        from carbonlog.integrations.lightning import EmissionsCallback

        return EmissionsCallback(location="FR", verbose=False)
    if name == "codecarbon":
        from codecarbon import OfflineEmissionsTracker

        class CodeCarbonEpochs(lightning.Callback):
            def on_train_start(self, trainer, pl_module):
                self.tracker = OfflineEmissionsTracker(
                    country_iso_code="FRA", save_to_file=False, log_level="error", output_dir=root
                )

            def on_train_epoch_start(self, trainer, pl_module):
                self.tracker.start_task(f"epoch {trainer.current_epoch}")

            def on_train_epoch_end(self, trainer, pl_module):
                self.tracker.stop_task()

        return CodeCarbonEpochs()
    if name == "carbontracker":
        from carbontracker.tracker import CarbonTracker

        class CarbonTrackerEpochs(lightning.Callback):
            def on_train_start(self, trainer, pl_module):
                self.tracker = CarbonTracker(
                    epochs=epochs, monitor_epochs=-1, log_dir=root, verbose=0, update_interval=1
                )

            def on_train_epoch_start(self, trainer, pl_module):
                self.tracker.epoch_start()

            def on_train_epoch_end(self, trainer, pl_module):
                self.tracker.epoch_end()

            def on_train_end(self, trainer, pl_module):
                self.tracker.stop()

        return CarbonTrackerEpochs()
    return None


def lightning_fit_s(name: str, epochs: int, batches: int, root: str) -> float:
    import lightning
    import torch
    from bench_lightning import fit_seconds

    x = torch.randn(batches * 64, 32, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=64
    )
    callback = lightning_callback(name, epochs, root)
    return fit_seconds(torch, lightning, data, epochs, root, [callback] if callback else [])


def transformers_fit_s(name: str, epochs: int, batches: int, root: str) -> float:
    import time

    from bench_transformers import BATCH, dataset, tiny_bert
    from transformers import PrinterCallback, Trainer, TrainingArguments

    callbacks = []
    if name == "carbonlog":
        from carbonlog.integrations.transformers import EmissionsCallback

        callbacks.append(EmissionsCallback(location="FR", verbose=False))
    elif name == "carbontracker":
        from carbontracker.tracker import CarbonTracker
        from transformers import TrainerCallback

        class CarbonTrackerEpochs(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                self.tracker = CarbonTracker(
                    epochs=epochs, monitor_epochs=-1, log_dir=root, verbose=0, update_interval=1
                )

            def on_epoch_begin(self, args, state, control, **kwargs):
                self.tracker.epoch_start()

            def on_epoch_end(self, args, state, control, **kwargs):
                self.tracker.epoch_end()

            def on_train_end(self, args, state, control, **kwargs):
                self.tracker.stop()

        callbacks.append(CarbonTrackerEpochs())
    args = TrainingArguments(
        root,
        num_train_epochs=epochs,
        per_device_train_batch_size=BATCH,
        logging_strategy="epoch",
        save_strategy="no",
        report_to=["codecarbon"] if name == "codecarbon" else [],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=tiny_bert(), args=args, train_dataset=dataset(batches * BATCH), callbacks=callbacks
    )
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def slope_intercept(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares through (epochs, seconds): seconds per epoch and fixed seconds."""
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("lightning", "transformers"), default="lightning")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--short", type=int, default=2, help="epochs of the short fits")
    parser.add_argument("--long", type=int, default=8, help="epochs of the long fits")
    parser.add_argument("--batches", type=int, default=256, help="batches per epoch")
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    fit_s = lightning_fit_s if options.framework == "lightning" else transformers_fit_s
    import torch

    torch.set_num_threads(1)
    home = tempfile.mkdtemp(prefix="carbonlog-peers-")
    os.environ["CARBONLOG_HOME"] = home
    runs: dict[str, list[tuple[int, float]]] = {name: [] for name in TRACKERS}
    per_repeat: dict[str, list[float]] = {name: [] for name in TRACKERS}
    for _ in range(options.repeats):
        for name in TRACKERS:
            pair = []
            for epochs in (options.short, options.long):
                with (
                    tempfile.TemporaryDirectory(dir=home) as root,
                    contextlib.redirect_stdout(io.StringIO()),
                ):
                    seconds = fit_s(name, epochs, options.batches, root)
                runs[name].append((epochs, seconds))
                pair.append((epochs, seconds))
            per_repeat[name].append(slope_intercept(pair)[0])
    base_slope, base_fixed = slope_intercept(runs["none"])
    q1, _, q3 = quartiles(per_repeat["none"])
    print(
        f"{options.framework}: {options.batches} batches per epoch, fits of {options.short} and "
        f"{options.long} epochs, {options.repeats} alternating repeats, 1 torch thread"
    )
    print(f"  no tracker: {base_slope * 1000:.1f} ms per epoch, {base_fixed * 1000:.0f} ms fixed")
    print(f"  resolution (IQR of the baseline's per-epoch time): {(q3 - q1) * 1000:.2f} ms")
    for name in TRACKERS[1:]:
        slope, fixed = slope_intercept(runs[name])
        extra_ms = (slope - base_slope) * 1000
        print(
            f"  {name:>13}: {extra_ms:+.2f} ms per epoch ({extra_ms / (base_slope * 10):+.2f} %), "
            f"fixed start {(fixed - base_fixed) * 1000:+.0f} ms"
        )


if __name__ == "__main__":
    main()
