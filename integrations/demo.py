"""The README's main job: a small real training with carbonlog, offline, on the CPU.

Lightning with the EmissionsCallback when Lightning is installed, otherwise the plain
Tracker around a PyTorch loop. It lives with the adapters because it imports PyTorch and
Lightning; `carbonlog demo` loads it by name when run and prints the Summary it returns.
"""

from __future__ import annotations

import importlib.util
import tempfile

import torch

from carbonlog import Summary, Tracker

SAMPLES = 16384
FEATURES = 32
BATCH = 64


def _loader() -> torch.utils.data.DataLoader:
    """A fixed synthetic regression set, y = x @ w + noise, in shuffled batches."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, FEATURES, generator=generator)
    y = x @ torch.randn(FEATURES, 1, generator=generator) + 0.1 * torch.randn(
        SAMPLES, 1, generator=generator
    )
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)


def _network() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)
    )


def run_lightning(epochs: int, tracker_options: dict) -> Summary:
    """Fit with Lightning and the EmissionsCallback; CSV logs go to a temporary folder."""
    import lightning.pytorch as pl

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
        trainer.fit(Regressor(), _loader())
    return callback.summary


def run_plain(epochs: int, tracker_options: dict) -> Summary:
    """A plain PyTorch loop with a Tracker: one mark() per epoch."""
    loader = _loader()
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


def run(epochs: int = 5, framework: str = "auto", **tracker_options) -> Summary:
    """Train `epochs` epochs with Lightning (when installed, or asked for) or plain PyTorch;
    the run's Summary."""
    use_lightning = framework == "lightning" or (
        framework == "auto" and importlib.util.find_spec("lightning") is not None
    )
    runner = run_lightning if use_lightning else run_plain
    return runner(epochs, tracker_options)
