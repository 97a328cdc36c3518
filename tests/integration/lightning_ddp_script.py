"""A 2-process DDP fit on gloo with constant wattage; each rank writes what it saw as JSON.

Lightning's DDP launcher re-runs this file for rank 1, so it must be a script, not `-c`.
Usage: python lightning_ddp_script.py OUT_DIR GPU_W CPU_W RAM_W [BUDGET_KWH]
(with a budget: on_budget="stop" and the run ledger in $CARBONLOG_HOME)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

from carbonlog.integrations.lightning import EmissionsCallback

EPOCHS = 3


def main(out: Path, gpu_w: float, cpu_w: float, ram_w: float, budget_kwh=None) -> None:
    budget = {"budget_kwh": budget_kwh, "on_budget": "stop"} if budget_kwh else {"ledger": False}
    callback = EmissionsCallback(
        intensity=100.0,
        pue=1.5,
        power_w={"gpu": gpu_w, "cpu": cpu_w, "ram": ram_w},
        verbose=False,
        **budget,
    )
    trainer = Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_epochs=EPOCHS,
        limit_train_batches=8,
        limit_val_batches=2,
        logger=CSVLogger(out, name="ddp"),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    trainer.fit(BoringModel())
    summary = callback.session.last_summary
    report = {
        "rank": trainer.global_rank,
        "callback_metrics": {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("carbon/")
        },
        "duration_s": summary.duration_s,
        "measured_s": sum(iv.duration_s for iv in summary.intervals),
        "gpu_j": summary.gpu_j,
        "cpu_j": summary.cpu_j,
        "ram_j": summary.ram_j,
        "energy_kwh": summary.energy_kwh,
        "epochs": sum(iv.label == "epoch" for iv in summary.intervals),
        "run_id": summary.run_id,
        "log_dir": trainer.logger.log_dir,
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(float(v) for v in sys.argv[2:]))
