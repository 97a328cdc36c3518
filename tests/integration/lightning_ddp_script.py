"""A 2-process DDP fit on gloo with constant wattage; each rank writes what it saw as JSON,
with every torch.distributed collective carbonlog made (found by a carbonlog frame on the
caller's stack) and the callback hook it was made from.

Lightning's DDP launcher re-runs this file for rank 1, so it must be a script, not `-c`.
Usage: python lightning_ddp_script.py OUT_DIR SETUP_JSON, where SETUP_JSON holds "watts"
(gpu, cpu, ram), optionally "budget_kwh" (on_budget="stop", the run ledger in $CARBONLOG_HOME),
"callback" (more EmissionsCallback options), "trainer" (more Trainer options) and "monitor"
(an EarlyStopping on that key).
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path

import torch.distributed as dist
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

import carbonlog
import carbonlog.integrations
from carbonlog.integrations.lightning import EmissionsCallback

EPOCHS = 3
COLLECTIVES = (
    "all_reduce",
    "barrier",
    "broadcast",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "broadcast_object_list",
    "gather",
    "reduce",
    "reduce_scatter",
    "scatter",
    "all_to_all",
)
OURS = tuple(str(Path(m.__file__).parent) for m in (carbonlog, carbonlog.integrations))
ADAPTER = str(Path(sys.modules[EmissionsCallback.__module__].__file__))


def count_collectives(seen: list[dict]) -> None:
    """Wrap torch.distributed's collectives: each call with a carbonlog frame on the stack is
    appended to `seen` as its name, size, dtype and the callback hook that led to it."""

    def wrap(name, real):
        @functools.wraps(real)
        def counted(*args, **kwargs):
            stack = traceback.extract_stack()
            if any(frame.filename.startswith(OURS) for frame in stack):
                hooks = [frame.name for frame in stack if frame.filename == ADAPTER]
                tensor = args[0] if args else None
                seen.append(
                    {
                        "fn": name,
                        "numel": tensor.numel() if hasattr(tensor, "numel") else None,
                        "dtype": str(getattr(tensor, "dtype", None)),
                        "hook": hooks[0] if hooks else None,
                    }
                )
            return real(*args, **kwargs)

        return counted

    for name in COLLECTIVES:
        setattr(dist, name, wrap(name, getattr(dist, name)))


def main(out: Path, setup: dict) -> None:
    watts = setup["watts"]
    budget = setup.get("budget_kwh")
    options = {"budget_kwh": budget, "on_budget": "stop"} if budget else {"ledger": False}
    callback = EmissionsCallback(
        intensity=100.0,
        pue=1.5,
        power_w=watts,
        verbose=False,
        **options,
        **setup.get("callback", {}),
    )
    callbacks = [callback]
    if setup.get("monitor"):
        callbacks.insert(0, EarlyStopping(monitor=setup["monitor"], mode="min", patience=99))
    trainer = Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_epochs=EPOCHS,
        limit_train_batches=8,
        limit_val_batches=2,
        logger=CSVLogger(out, name="ddp"),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
        **setup.get("trainer", {}),
    )
    seen: list[dict] = []
    count_collectives(seen)
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
        "collectives": seen,
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
