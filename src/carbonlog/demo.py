"""The README's main job: a small real training with carbonlog, offline, then a table.

Lightning with the EmissionsCallback when Lightning is installed, otherwise the plain
Tracker around a PyTorch loop. Frameworks are imported here only, when the demo runs.
"""

from __future__ import annotations

import importlib.util
import tempfile

from carbonlog.interval import Summary
from carbonlog.text import format_summary
from carbonlog.units import J_PER_KWH

SAMPLES = 16384
FEATURES = 32
BATCH = 64


def _dataset():
    """A fixed synthetic regression set: y = x @ w + noise."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, FEATURES, generator=generator)
    y = x @ torch.randn(FEATURES, 1, generator=generator) + 0.1 * torch.randn(
        SAMPLES, 1, generator=generator
    )
    return torch.utils.data.TensorDataset(x, y)


def _network():
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)
    )


def run_lightning(epochs: int, tracker_options: dict) -> Summary:
    """Fit with Lightning and the EmissionsCallback; CSV logs go to a temporary folder."""
    import lightning.pytorch as pl
    import torch

    from carbonlog.integrations.lightning import EmissionsCallback

    class Regressor(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _network()

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    loader = torch.utils.data.DataLoader(_dataset(), batch_size=BATCH, shuffle=True)
    callback = EmissionsCallback(**tracker_options)
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            callbacks=[callback],
            logger=pl.loggers.CSVLogger(logs),
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            log_every_n_steps=10,
        )
        trainer.fit(Regressor(), loader)
    return callback.summary


def run_plain(epochs: int, tracker_options: dict) -> Summary:
    """A plain PyTorch loop with a Tracker: one mark() per epoch."""
    import torch

    from carbonlog.tracking import Tracker

    loader = torch.utils.data.DataLoader(_dataset(), batch_size=BATCH, shuffle=True)
    model = _network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tracker = Tracker(**tracker_options, planned_epochs=epochs, run_info={"framework": "torch"})
    tracker.start()
    try:
        for _ in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            tracker.mark("epoch")
    except BaseException:
        tracker.stop(status="failed")
        raise
    return tracker.stop()


def table(summary: Summary) -> str:
    """Per-epoch energy and CO2, then the total, as a fixed-width table."""
    rows = [f"{'interval':<10}{'seconds':>9}{'kWh':>12}{'g CO2':>12}{'W':>8}  estimated"]
    for iv in summary.intervals:
        rows.append(
            f"{iv.label + ' ' + str(iv.index):<10}{iv.duration_s:>9.2f}{iv.energy_kwh:>12.3e}"
            f"{iv.co2_kg * 1000:>12.3e}{iv.power_w:>8.1f}  {','.join(iv.estimated) or '-'}"
        )
    rows.append(
        f"{'total':<10}{summary.duration_s:>9.2f}{summary.energy_kwh:>12.3e}"
        f"{summary.co2_kg * 1000:>12.3e}{summary.device_j / max(summary.duration_s, 1e-9):>8.1f}"
    )
    rows.append(f"(device energy {summary.device_j / J_PER_KWH:.3e} kWh before PUE)")
    return "\n".join(rows)


def run(epochs: int = 5, framework: str = "auto", **tracker_options) -> Summary:
    """Train, print the table and the totals line; return the Summary."""
    use_lightning = framework == "lightning" or (
        framework == "auto" and importlib.util.find_spec("lightning") is not None
    )
    runner = run_lightning if use_lightning else run_plain
    summary = runner(epochs, tracker_options)
    print(table(summary))
    print(format_summary(summary, "demo"))
    return summary
