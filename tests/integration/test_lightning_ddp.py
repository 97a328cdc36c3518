"""The Lightning callback under DDP: 2 gloo processes on the CPU (lightning_ddp_script.py), the
figures each rank saw, the CSV rank zero wrote, the ledger, and every torch.distributed
collective carbonlog made, counted by wrapping torch.distributed's functions in the script."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from carbonlog.ledger import Ledger  # noqa: E402
from carbonlog.units import J_PER_KWH  # noqa: E402

pytestmark = pytest.mark.slow
EPOCHS = 3  # as in the script
WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
EDGE = {"fn": "all_reduce", "numel": 28, "dtype": "torch.float64"}
"""One interval's sum: joules (3), rank zero's intensity, three blocks of per-component flags."""
PEEK = {"fn": "all_reduce", "numel": 6, "dtype": "torch.float64"}
"""A summed peek: the joules since the last peek and since the epoch's edge."""


def run_ddp(tmp_path, **setup) -> list[dict]:
    """The DDP script on 2 gloo processes; what each rank saw."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "CARBONLOG_HOME": str(tmp_path / "home"),
    }
    script = Path(__file__).with_name("lightning_ddp_script.py")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), json.dumps({"watts": WATTS, **setup})],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def made(rank: dict) -> list[tuple]:
    """The collectives carbonlog made on a rank, as (hook, fn, numel, dtype)."""
    return [(c["hook"], c["fn"], c["numel"], c["dtype"]) for c in rank["collectives"]]


def at(hook: str, kind: dict) -> tuple:
    return (hook, kind["fn"], kind["numel"], kind["dtype"])


def test_ddp_ranks_take_the_same_budget_decision(tmp_path):
    ranks = run_ddp(tmp_path, budget_kwh=1e-12)  # any epoch crosses this budget
    assert [rank["epochs"] for rank in ranks] == [1, 1]  # both stopped after epoch 1 of 3
    with Ledger(str(tmp_path / "home" / "ledger.sqlite3")) as ledger:
        runs = ledger.runs()
    assert [(run.id, run.status) for run in runs] == [(ranks[0]["run_id"], "budget")]


def test_ddp_sums_gpus_over_ranks_and_counts_the_host_once(tmp_path):
    gpu_w, cpu_w, ram_w = WATTS["gpu"], WATTS["cpu"], WATTS["ram"]
    ranks = run_ddp(tmp_path, callback={"metrics": "full"})
    zero = ranks[0]
    # Every rank logs the same summed energy (so every rank takes the same decisions);
    # durations, and so mean power, are each process's own clock.
    for key in ("energy_kwh", "co2_kg", "energy_kwh_total", "co2_kg_total", "gpu_kwh", "cpu_kwh"):
        assert (
            ranks[0]["callback_metrics"][f"carbon/{key}"]
            == ranks[1]["callback_metrics"][f"carbon/{key}"]
        )
    assert zero["epochs"] == 3
    # Each rank measures its GPU over its own intervals; local rank 0 alone measures the host.
    spans = [rank["measured_s"] for rank in ranks]
    assert zero["gpu_j"] == pytest.approx(gpu_w * sum(spans), rel=1e-3)
    assert zero["cpu_j"] == pytest.approx(cpu_w * spans[0], rel=1e-3)
    assert zero["ram_j"] == pytest.approx(ram_w * spans[0], rel=1e-3)

    with open(Path(zero["log_dir"]) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [row for row in rows if row.get("carbon/energy_kwh")]
    assert len(epochs) == 3
    logged_total = float(rows[-1]["carbon/energy_kwh_total"])
    exact = (gpu_w * sum(spans) + (cpu_w + ram_w) * spans[0]) * 1.5 / J_PER_KWH
    assert logged_total == pytest.approx(exact, rel=1e-3)
    # = (2 G + C + R) x duration, up to the ranks' start-up skew
    assert logged_total == pytest.approx(
        (2 * gpu_w + cpu_w + ram_w) * spans[0] * 1.5 / J_PER_KWH, rel=0.2
    )
    per_epoch = sum(float(row["carbon/energy_kwh"]) for row in epochs)
    assert per_epoch == pytest.approx(float(epochs[-1]["carbon/energy_kwh_total"]), rel=1e-5)


def test_one_small_all_reduce_per_epoch_edge_and_none_per_step(tmp_path):
    """No barrier, no broadcast, no gather: one 28-float64 all-reduce at each epoch's edge
    and one at the fit's end (the interval after the last epoch), on every rank alike."""
    ranks = run_ddp(tmp_path)
    expected = [at("on_train_epoch_end", EDGE)] * EPOCHS + [at("on_fit_end", EDGE)]
    assert [made(rank) for rank in ranks] == [expected, expected]


def test_collectives_only_where_asked_for(tmp_path):
    """A fine-tuning shares rank zero's from-scratch reference once as the fit begins (4
    float64); step logs every 4 of 8 batches and a validation read by a carbon monitor each
    add one summed peek (6 float64); the epoch edges stay one all-reduce each."""
    ranks = run_ddp(
        tmp_path,
        callback={"pretrained": True, "base_model": "bert-base-uncased", "log_every_n_steps": 4},
        monitor="carbon/co2_kg_total",
    )
    epoch = [at("on_train_batch_end", PEEK)] * 2
    epoch += [at("on_validation_epoch_end", PEEK), at("on_train_epoch_end", EDGE)]
    reference = ("on_fit_start", "all_reduce", 4, "torch.float64")
    expected = [reference, *epoch * EPOCHS, at("on_fit_end", EDGE)]
    assert [made(rank) for rank in ranks] == [expected, expected]
    # the figures that drive decisions agree; mean power and durations are each rank's clock
    decided = [
        {k: v for k, v in rank["callback_metrics"].items() if "kwh" in k or "kg" in k}
        for rank in ranks
    ]
    assert decided[0] == decided[1] and "carbon/co2_saved_vs_scratch_kg" in decided[0]
