"""What the Lightning callback costs: fit time with and without it, as a ratio and ms per epoch.

A small MLP fits random data on the CPU with a CSVLogger in every run; fits with and without
the callback alternate so that drift of the machine hits both alike. The callback runs with
its default meters (on a CPU-only machine: the CPU and RAM models), with and without the run
ledger. Two figures per variant: the difference of median fit times (what a user sees, noisy)
and the time spent inside the callback's hooks (timed around each hook call), split into
carbonlog's core (Session calls: meters, arithmetic, ledger) and the rest (Lightning's
loggers and the callback_metrics it writes to). The resolution of the first is the spread of
the baseline (interquartile range of its per-epoch time over the repeats): a difference below it
is noise.

Run: python benchmarks/bench_lightning.py [--epochs 20] [--repeats 5] [--batches 40].
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings

from timing import quartiles, time_methods

BATCH = 64
HOOKS = (
    "setup",
    "on_fit_start",
    "on_sanity_check_start",
    "on_train_start",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_validation_start",
    "on_validation_epoch_end",
    "on_fit_end",
)


def build_module(torch, lightning):
    class Tiny(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return Tiny()


SESSION_CALLS = ("begin", "epoch_end", "step", "end")


def fit_seconds(torch, lightning, data, epochs: int, root: str, callbacks: list) -> float:
    trainer = lightning.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=lightning.pytorch.loggers.CSVLogger(root, name="bench"),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
    )
    model = build_module(torch, lightning)
    t0 = time.perf_counter()
    trainer.fit(model, data)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches per epoch")
    args = parser.parse_args()

    import lightning
    import torch

    from carbonlog.integrations.lightning import EmissionsCallback

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch.manual_seed(0)
    x = torch.randn(args.batches * BATCH, 32)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=BATCH
    )
    root = tempfile.mkdtemp(prefix="carbonlog-bench-")
    os.environ.setdefault("CARBONLOG_HOME", root)
    variants = {
        "without": lambda: None,
        "callback, ledger off": lambda: EmissionsCallback(
            intensity=50.0, ledger=False, verbose=False
        ),
        "callback, ledger on": lambda: EmissionsCallback(
            intensity=50.0, ledger=os.path.join(root, "ledger.db"), verbose=False
        ),
    }
    for make in variants.values():  # warm-up: kernels, loggers, carbonlog tables and ledger
        callback = make()
        fit_seconds(torch, lightning, data, 2, root, [callback] if callback else [])

    times: dict[str, list[float]] = {name: [] for name in variants}
    hook_s: dict[str, list[float]] = {name: [] for name in variants}
    core_s: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():
            callback = make()
            hooks = time_methods(callback, HOOKS) if callback else []
            core = time_methods(callback.session, SESSION_CALLS) if callback else []
            callbacks = [callback] if callback else []
            times[name].append(fit_seconds(torch, lightning, data, args.epochs, root, callbacks))
            hook_s[name].append(sum(hooks))
            core_s[name].append(sum(core))

    clock = time.get_clock_info("perf_counter")
    print(
        f"lightning {lightning.__version__}, torch {torch.__version__} (CPU), {args.epochs} "
        f"epochs x {args.batches} batches of {BATCH}, {args.repeats} repeats, "
        f"{os.cpu_count()} cores; perf_counter resolution {clock.resolution * 1e9:.0f} ns"
    )
    base_q1, base_s, base_q3 = quartiles(times["without"])
    epoch_ms = base_s / args.epochs * 1000
    resolution_ms = (base_q3 - base_q1) / args.epochs * 1000
    print(f"  without: median {base_s:.3f} s per fit, {epoch_ms:.1f} ms per epoch")
    for name in list(variants)[1:]:
        _, median_s, _ = quartiles(times[name])
        overhead_ms = (median_s - base_s) / args.epochs * 1000
        inside_ms = statistics.median(hook_s[name]) / args.epochs * 1000
        core_ms = statistics.median(core_s[name]) / args.epochs * 1000
        lightning_ms = inside_ms - core_ms
        print(
            f"  {name}: median {median_s:.3f} s, ratio {median_s / base_s:.4f}, fit-time "
            f"difference {overhead_ms:+.2f} ms per epoch\n"
            f"    inside the hooks {inside_ms:.2f} ms per epoch "
            f"({inside_ms / epoch_ms * 100:.2f} % of an epoch): carbonlog's core (start, mark, "
            f"stop, ledger, reading callback_metrics) {core_ms:.2f} ms, "
            f"the loggers and callback_metrics {lightning_ms:.2f} ms"
        )
    print(f"  resolution of the fit-time difference (IQR of the baseline): {resolution_ms:.2f} ms")


if __name__ == "__main__":
    main()
