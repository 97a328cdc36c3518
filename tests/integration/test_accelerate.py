"""The Accelerate adapter with a real Accelerator on the CPU: each mark logged through
`accelerator.log` to TensorBoard (read back from the event files) and kept in the ledger;
the budget stops the loop; a block that raises ends the run "failed". In two gloo processes
(torchrun): one `accelerator.reduce` per mark, totals summed once, one ledger run, and the
budget stopping both processes at the same epoch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from carbonlog.integrations.accelerate import AcceleratorTracking, track
from carbonlog.ledger import Ledger

SCRIPT = Path(__file__).with_name("accelerate_ddp_script.py")
REPO = Path(__file__).resolve().parents[2]
OPTIONS = {
    "location": "FR",
    "intensity": 100.0,
    "pue": 1.2,
    "gpus": None,
    "power_w": {"cpu": 20.0, "ram": 2.0},
}
J_PER_KWH = 3.6e6


@pytest.fixture
def accelerator(tmp_path):
    accelerator = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path / "tb"))
    accelerator.init_trackers("run")
    yield accelerator
    accelerator.end_training()
    AcceleratorState._reset_state(reset_partial_state=True)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the TensorBoard event files under `folder`: (step, value)."""
    (events,) = folder.rglob("events.out.tfevents.*")
    reader = EventAccumulator(str(events.parent))
    reader.Reload()
    return {
        tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]
    }


def train_epoch(accelerator, prepared) -> torch.Tensor:
    model, optimizer, loader = prepared
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    return loss.detach()


def prepared(accelerator):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    return accelerator.prepare(model, optimizer, torch.utils.data.DataLoader(data, batch_size=8))


def test_each_mark_reaches_tensorboard_and_the_ledger(accelerator, tmp_path):
    parts = prepared(accelerator)
    ledger = tmp_path / "ledger.sqlite3"
    logged = []
    with track(accelerator, ledger=str(ledger), task="toy", **OPTIONS) as t:
        for _ in range(3):
            loss = train_epoch(accelerator, parts)
            time.sleep(0.02)
            logged.append(t.mark("epoch", metrics={"loss": loss}))
    accelerator.end_training()  # flushes the event files
    series = scalars(tmp_path / "tb")
    for key in ("carbon/energy_kwh", "carbon/co2_kg", "carbon/co2_kg_total", "carbon/power_w"):
        values = [(step, pytest.approx(d[key], rel=1e-6)) for step, d in enumerate(logged)]
        assert series[key][:3] == values, key
    summary = t.summary
    # the run's totals, logged once more after the last mark (the stop's interval included)
    assert series["carbon/co2_kg_total"][-1] == (3, pytest.approx(summary.co2_kg, rel=1e-6))
    assert series["carbon/duration_s_total"] == [(3, pytest.approx(summary.duration_s, 1e-6))]
    power_w = [d["carbon/power_w"] for d in logged]
    assert power_w == [pytest.approx(22.0, rel=1e-2)] * 3  # 20 W CPU + 2 W RAM, constant
    with Ledger(ledger) as opened:
        (run,) = opened.runs()
        stored = opened.run(run.id)
    assert (run.framework, run.task, run.status) == ("accelerate", "toy", "completed")
    assert [iv.label for iv in stored.intervals] == ["epoch", "epoch", "epoch", "end"]
    assert stored.intervals[2].metrics["loss"] == pytest.approx(float(loss))
    assert run.co2_kg == pytest.approx(summary.co2_kg, rel=1e-9)


def test_the_budget_stops_the_loop_at_the_epoch_that_reaches_it(accelerator, tmp_path):
    budget_kwh = 22.0 * 1.2 * 0.05 * 2.5 / J_PER_KWH  # about two and a half 50 ms epochs
    epochs = 0
    with track(accelerator, ledger=str(tmp_path / "l.sqlite3"), budget_kwh=budget_kwh,
               on_budget="stop", **OPTIONS) as t:  # fmt: skip
        for _ in range(20):
            time.sleep(0.05)
            values = t.mark("epoch")
            epochs += 1
            if t.should_stop:
                break
    assert 2 <= epochs < 20
    assert values["carbon/energy_kwh_total"] >= budget_kwh
    with Ledger(tmp_path / "l.sqlite3") as opened:
        assert opened.runs()[0].status == "budget"


def test_a_block_that_raises_ends_the_run_failed_and_the_error_goes_on(accelerator, tmp_path):
    ledger = tmp_path / "l.sqlite3"
    with pytest.raises(ZeroDivisionError), track(accelerator, ledger=str(ledger), **OPTIONS) as t:
        t.mark("epoch")
        1 / 0  # noqa: B018
    with Ledger(ledger) as opened:
        assert opened.runs()[0].status == "failed"
    assert t.summary.status == "failed"


def test_an_accelerator_without_trackers_is_said_once(tmp_path, carbon_warnings):
    accelerator = Accelerator(cpu=True)
    try:
        with track(accelerator, ledger=False, **OPTIONS) as t:
            t.mark("epoch")
            t.mark("epoch")
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    said = [r.getMessage() for r in carbon_warnings if "no tracker" in r.getMessage()]
    assert len(said) == 1
    assert t.running_totals() == {}  # the run has ended


def test_options_are_checked_before_the_loop():
    with pytest.raises(TypeError, match="reduce: set by the accelerate callback"):
        AcceleratorTracking(object(), reduce=lambda v: v)
    with pytest.raises(ValueError):
        AcceleratorTracking(object(), pue=-1.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_sum_once_write_one_run_and_stop_alike(tmp_path):
    # per epoch about 100 W x 0.1 s + 200 W x 0.2 s + the host: a budget of about 3 epochs
    budget_kwh = 150.0 / J_PER_KWH
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         str(SCRIPT), str(tmp_path), str(budget_kwh)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))

    assert len(zero["marks"]) == len(one["marks"]) < 8  # the budget stopped both at one epoch
    assert [m["calls"] for m in zero["made"] + one["made"]] == [1] * 2 * len(zero["marks"])
    assert len(zero["sizes"]) == len(zero["marks"]) + 1  # one per interval: marks and the stop
    assert len(set(zero["sizes"])) == 1  # of one small float64 vector
    for mine, theirs in zip(zero["marks"], one["marks"], strict=True):
        seconds = (mine.pop("carbon/duration_s"), theirs.pop("carbon/duration_s"))  # own clocks
        mine.pop("carbon/power_w"), theirs.pop("carbon/power_w")  # over each one's own seconds
        assert mine == theirs  # kWh, kg, totals and intensity alike on both processes
        gpu_kwh = (100.0 * seconds[0] + 200.0 * seconds[1]) / J_PER_KWH  # each GPU once
        assert mine["carbon/gpu_kwh"] == pytest.approx(gpu_kwh, rel=1e-3)
        assert mine["carbon/cpu_kwh"] == pytest.approx(10.0 * seconds[0] / J_PER_KWH, rel=1e-3)
    assert zero["energy_kwh"] == one["energy_kwh"]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        (run,) = ledger.runs()  # one run, written by the main process
    assert run.status == "budget"
    assert run.energy_kwh == pytest.approx(zero["energy_kwh"], rel=1e-9)
    assert one["scraped"] == {} and zero["scraped"]["port"]  # one endpoint: the main process's
    (total,) = [line for line in zero["scraped"]["page"].splitlines()
                if line.startswith("carbonlog_energy_kwh_total{")]  # fmt: skip
    assert float(total.split()[-1]) == zero["marks"][-1]["carbon/energy_kwh_total"]
    series = scalars(tmp_path / "tb")  # the main process alone writes TensorBoard
    totals = series["carbon/energy_kwh_total"]
    assert [step for step, _ in totals] == [*range(len(zero["marks"])), len(zero["marks"])]
    assert totals[-1][1] == pytest.approx(zero["energy_kwh"], rel=1e-6)
