"""Energy and CO2 of a small PyTorch Lightning training, epoch by epoch, on the CPU, offline.

The EmissionsCallback is the only carbonlog line in the Trainer; its figures reach the
CSVLogger (metrics.csv), trainer.callback_metrics (read here by a printing callback, as
EarlyStopping or ModelCheckpoint would) and the run ledger.

Run: python examples/lightning_example.py [--epochs 5] [--location FR] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from carbonlog.integrations.lightning import EmissionsCallback


class Classifier(LightningModule):
    """A two-layer MLP telling two interleaved spirals apart."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 2),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        accuracy = (self.net(x).argmax(dim=1) == y).float().mean()
        self.log("val_accuracy", accuracy, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def spirals(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=generator) * 3 * torch.pi
    y = torch.randint(0, 2, (n,), generator=generator)
    angle = t + y * torch.pi
    x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1) / (3 * torch.pi)
    return TensorDataset(x + 0.02 * torch.randn(n, 2, generator=generator), y)


class PrintEnergy(Callback):
    """Prints the epoch's figures from trainer.callback_metrics, where monitors read them."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        m = trainer.callback_metrics
        print(
            f"epoch {trainer.current_epoch}: {float(m['carbon/energy_kwh']):.3g} kWh, "
            f"{float(m['carbon/co2_kg']) * 1000:.3g} g CO2 "
            f"(running total {float(m['carbon/co2_kg_total']) * 1000:.3g} g) "
            f"at {float(m['carbon/power_w']):.0f} W; "
            f"val_accuracy {float(m['val_accuracy']):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--location", default="FR", help='e.g. "FR", "US-CA", "gcp:us-central1"')
    parser.add_argument("--out", default=None, help="log directory (default: a temporary one)")
    args = parser.parse_args()

    out = args.out or tempfile.mkdtemp(prefix="carbonlog-lightning-")
    emissions = EmissionsCallback(location=args.location, verbose=False)
    trainer = Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=CSVLogger(out, name="spirals"),
        callbacks=[emissions, PrintEnergy()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    train = DataLoader(spirals(1024, seed=0), batch_size=128, shuffle=True)
    val = DataLoader(spirals(512, seed=1), batch_size=512)
    trainer.fit(Classifier(), train, val)

    fit = emissions.session.last_summary
    print(
        f"fit: {fit.energy_kwh:.3g} kWh, {fit.co2_kg * 1000:.3g} g CO2 in {fit.duration_s:.1f} s "
        f"({fit.site['location']}, {fit.site['g_per_kwh']:.0f} g/kWh); "
        f"per-epoch figures in {trainer.logger.log_dir}/metrics.csv"
    )


if __name__ == "__main__":
    main()
