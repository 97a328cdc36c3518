"""Tracker: tiling, arithmetic, faults, distributed sums, resume, forecast and budgets."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time

import pytest

import carbonlog
import carbonlog.meters
from carbonlog import metrics
from carbonlog.distributed import Ranks
from carbonlog.meters import ConstantPowerMeter
from carbonlog.tracking import Tracker
from carbonlog.units import J_PER_KWH

WATTS = {"gpu": 200.0, "cpu": 20.0, "ram": 2.0}


def constant_tracker(**kwargs) -> Tracker:
    options = {"intensity": 100.0, "pue": 1.5, "power_w": WATTS, "ledger": False}
    options.update(kwargs)
    return Tracker(**options)


class FlakyMeter(ConstantPowerMeter):
    """A counter meter that fails on its `fail_at`-th read, like a GPU that falls off the bus."""

    estimated = False

    def __init__(self, power_w: float, fail_at: int):
        super().__init__("gpu", power_w, "flaky gpu")
        self.reads = 0
        self.fail_at = fail_at

    def energy_j(self) -> float:
        self.reads += 1
        if self.reads >= self.fail_at:
            raise RuntimeError("GPU is lost")
        return super().energy_j()

    def fallback(self) -> ConstantPowerMeter:
        return ConstantPowerMeter("gpu", 50.0, "estimate")


def test_intervals_tile_time_and_sum_to_the_total_to_the_joule():
    tracker = constant_tracker().start()
    for _ in range(3):
        time.sleep(0.05)
        tracker.mark("epoch")
    summary = tracker.stop()
    assert [iv.label for iv in summary.intervals] == ["epoch"] * 3 + ["end"]
    assert sum(iv.device_j for iv in summary.intervals) == pytest.approx(summary.device_j, abs=1e-9)
    assert sum(iv.duration_s for iv in summary.intervals) == pytest.approx(
        summary.duration_s, abs=0.01
    )
    assert sum(iv.co2_kg for iv in summary.intervals) == pytest.approx(summary.co2_kg, rel=1e-12)
    assert summary.intervals[-1].energy_kwh_total == pytest.approx(summary.energy_kwh, rel=1e-12)


def test_interval_arithmetic_follows_the_schema():
    tracker = constant_tracker().start()
    time.sleep(0.1)
    iv = tracker.mark("epoch")
    tracker.stop()
    for component, watts in WATTS.items():
        assert getattr(iv, f"{component}_j") == pytest.approx(watts * iv.duration_s, rel=0.02)
    assert iv.energy_kwh == pytest.approx(iv.device_j * 1.5 / J_PER_KWH)
    assert iv.co2_kg == pytest.approx(iv.energy_kwh * 100.0 / 1000.0)
    assert iv.power_w == pytest.approx(sum(WATTS.values()), rel=0.02)
    assert set(iv.estimated) == {"gpu", "cpu", "ram"}  # constant wattage is an estimate

    logged = metrics.to_dict(iv)
    assert set(logged) == {f"carbon/{k}" for k in metrics.KEYS}
    assert all(isinstance(v, float) for v in logged.values())
    assert logged["carbon/gpu_kwh"] == pytest.approx(iv.gpu_j / J_PER_KWH)
    assert logged["carbon/energy_kwh"] == pytest.approx(
        (logged["carbon/gpu_kwh"] + logged["carbon/cpu_kwh"] + logged["carbon/ram_kwh"]) * 1.5
    )


def test_context_manager_records_failure_status():
    with pytest.raises(KeyError), carbonlog.track(intensity=50.0, power_w=WATTS, ledger=False) as t:
        raise KeyError("boom")
    assert t.stop().status == "failed"


def test_hardware_fault_degrades_to_estimate_with_one_warning(monkeypatch, caplog):
    flaky = FlakyMeter(100.0, fail_at=3)
    monkeypatch.setattr(carbonlog.meters, "build_meters", lambda **_: [flaky])
    tracker = constant_tracker(power_w=None, cpu=None, ram=False).start()
    with caplog.at_level(logging.WARNING, logger="carbonlog"):
        first = []
        for _ in range(2):
            time.sleep(0.1)
            first.append(tracker.mark("epoch"))
        time.sleep(0.1)
        faulted = tracker.mark("epoch")  # third read raises
        time.sleep(0.1)
        after = tracker.mark("epoch")
        tracker.stop()
    assert all(iv.estimated == () for iv in first)
    assert faulted.estimated == ("gpu",)
    assert faulted.gpu_j == pytest.approx(100.0 * faulted.duration_s, rel=0.05)
    assert after.gpu_j == pytest.approx(50.0 * after.duration_s, rel=0.05)
    warnings = [r for r in caplog.records if "gpu meter failed" in r.getMessage()]
    assert len(warnings) == 1


def test_reduce_sums_over_processes_and_a_failing_reduce_keeps_local_figures(caplog):
    doubled = constant_tracker(reduce=lambda v: [2 * x for x in v]).start()
    time.sleep(0.1)
    iv = doubled.mark("epoch")
    doubled.stop()
    assert iv.gpu_j == pytest.approx(2 * WATTS["gpu"] * iv.duration_s, rel=0.05)

    def broken(_):
        raise OSError("peer went away")

    with caplog.at_level(logging.WARNING, logger="carbonlog"):
        local = constant_tracker(reduce=broken).start()
        time.sleep(0.1)
        iv = local.mark("epoch")
        local.stop()
    assert iv.gpu_j == pytest.approx(WATTS["gpu"] * iv.duration_s, rel=0.05)
    assert any("summing over processes failed" in r.getMessage() for r in caplog.records)


def test_only_local_rank_zero_measures_the_host():
    worker = constant_tracker(ranks=Ranks(rank=1, local_rank=1, world_size=2)).start()
    time.sleep(0.02)
    iv = worker.mark("epoch")
    worker.stop()
    assert iv.cpu_j == 0 and iv.ram_j == 0 and iv.gpu_j > 0


def test_peek_reports_since_last_peek_and_leaves_the_epoch_whole():
    tracker = constant_tracker().start()
    time.sleep(0.03)
    step1 = tracker.peek()
    time.sleep(0.03)
    step2 = tracker.peek()
    epoch = tracker.mark("epoch")
    tracker.stop()
    assert step1.gpu_j + step2.gpu_j < epoch.gpu_j
    assert epoch.gpu_j == pytest.approx(WATTS["gpu"] * epoch.duration_s, rel=0.02)
    assert step2.energy_kwh_total < epoch.energy_kwh_total
    assert len(tracker.intervals) == 2  # the epoch and the end: peeks are not recorded


def test_resume_continues_the_totals():
    first = constant_tracker(planned_epochs=4).start()
    for _ in range(2):
        time.sleep(0.02)
        first.mark("epoch")
    state = first.state_dict()
    first.stop()

    second = constant_tracker(planned_epochs=4)
    second.load_state_dict(state)
    second.start()
    time.sleep(0.02)
    iv = second.mark("epoch")
    second.stop()
    assert second.epochs_done == 3
    assert iv.energy_kwh_total == pytest.approx(state["energy_kwh_total"] + iv.energy_kwh)
    assert iv.co2_kg_total == pytest.approx(state["co2_kg_total"] + iv.co2_kg)


def test_forecast_after_two_of_ten_steady_epochs_is_within_ten_percent():
    tracker = constant_tracker(planned_epochs=10).start()
    time.sleep(0.08)  # a slow first epoch (warm-up) that the forecast must not extrapolate
    tracker.mark("epoch")
    forecasts = []
    for _ in range(9):
        time.sleep(0.03)
        forecasts.append(tracker.mark("epoch").forecast_co2_kg)
    final = tracker.intervals[-1].co2_kg_total
    tracker.stop()
    assert forecasts[0] == pytest.approx(final, rel=0.10)


@pytest.mark.parametrize("check", ["total", "forecast"])
def test_budget_stop_decides_once_and_warn_goes_on(check, caplog):
    per_epoch_kg = sum(WATTS.values()) * 1.5 / J_PER_KWH * 0.1 * 0.02  # ~20 ms epochs
    tracker = constant_tracker(budget_kg=per_epoch_kg * 3, on_budget="stop", budget_check=check)
    tracker.start()
    epochs = 0
    while not tracker.should_stop and epochs < 50:
        time.sleep(0.02)
        tracker.mark("epoch")
        epochs += 1
    tracker.stop()
    assert 1 < epochs < 10
    assert tracker.stop_reason.startswith("budget:")
    if check == "forecast":  # stopped before crossing
        assert tracker.co2_kg_total <= per_epoch_kg * 3

    with caplog.at_level(logging.WARNING, logger="carbonlog"):
        warned = constant_tracker(budget_kg=0.0, on_budget="warn").start()
        for _ in range(3):
            warned.mark("epoch")
        warned.stop()
    assert not warned.should_stop and warned.stop_reason
    assert sum("training goes on" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_kg": -1.0},
        {"budget_kwh": math.nan},
        {"on_budget": "explode"},
        {"budget_check": "vibes"},
        {"pue": -1.0},
        {"pue": math.nan},
        {"intensity": -5.0},
        {"power_w": {"fan": 3.0}},
        {"power_w": {"gpu": -3.0}},
        {"cpu": "abacus"},
    ],
)
def test_bad_configuration_fails_at_construction(kwargs):
    with pytest.raises(ValueError):
        Tracker(**{"ledger": False, "intensity": 100.0, **kwargs})


def test_misuse_is_an_error():
    tracker = constant_tracker()
    with pytest.raises(RuntimeError):
        tracker.mark("epoch")
    tracker.start()
    summary = tracker.stop()
    assert tracker.stop() is summary
    with pytest.raises(RuntimeError):
        tracker.mark("epoch")


def test_marks_from_several_threads_lose_nothing():
    tracker = constant_tracker().start()
    threads = [
        threading.Thread(target=lambda: [tracker.mark("x") for _ in range(20)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = tracker.stop()
    assert len(summary.intervals) == 81
    assert [iv.index for iv in summary.intervals] == list(range(81))
    assert sum(iv.device_j for iv in summary.intervals) == pytest.approx(summary.device_j)
    assert sum(iv.duration_s for iv in summary.intervals) == pytest.approx(
        summary.duration_s, abs=0.01
    )


def test_import_is_light():
    code = (
        "import sys, time; t = time.perf_counter(); import carbonlog; "
        "ms = (time.perf_counter() - t) * 1000; "
        "heavy = [m for m in ('torch', 'lightning', 'transformers', 'keras', 'pandas', "
        "'tensorflow', 'jax', 'pynvml', 'psutil', 'numpy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_long_run_keeps_its_totals_exact_and_memory_bounded(monkeypatch):
    import carbonlog.tracking.account as account_module

    monkeypatch.setattr(account_module, "INTERVALS_KEPT", 10)
    tracker = constant_tracker().start()
    marked = [tracker.mark("step") for _ in range(25)]
    summary = tracker.stop()
    assert len(summary.intervals) == 10
    assert [iv.index for iv in summary.intervals] == list(range(16, 26))
    assert summary.device_j == pytest.approx(
        sum(iv.device_j for iv in marked) + summary.intervals[-1].device_j
    )
    assert summary.intervals[-1].energy_kwh_total == pytest.approx(summary.energy_kwh, rel=1e-12)


def test_the_run_can_say_what_it_is(tmp_path):
    from carbonlog.ledger import Ledger

    path = str(tmp_path / "ledger.sqlite3")
    tracker = constant_tracker(
        ledger=path, task="sst2", base_model="bert-base-uncased", pretrained=True
    ).start()
    tracker.mark("epoch")
    summary = tracker.stop()
    with Ledger(path) as ledger:
        run = ledger.run(summary.run_id)
    assert (run.task, run.base_model, run.pretrained) == ("sst2", "bert-base-uncased", True)


def test_a_resume_from_an_early_checkpoint_goes_on_from_the_ledger_not_back(tmp_path):
    from carbonlog.ledger import Ledger

    path = str(tmp_path / "ledger.sqlite3")
    first = constant_tracker(ledger=path).start()
    first.mark("epoch")
    checkpoint = first.state_dict()  # saved mid-run: the work after it is in the ledger only
    for _ in range(2):
        time.sleep(0.02)
        first.mark("epoch")
    before = first.stop()

    resumed = constant_tracker(ledger=path)
    resumed.load_state_dict(checkpoint)
    resumed.start()
    time.sleep(0.02)
    iv = resumed.mark("epoch")
    after = resumed.stop()
    assert iv.index == len(before.intervals)  # indices go on, not back to 1
    assert iv.co2_kg_total == pytest.approx(before.co2_kg + iv.co2_kg, rel=1e-9)
    with Ledger(path) as ledger:
        run = ledger.run(after.run_id)
    assert after.run_id == before.run_id
    assert run.co2_kg == pytest.approx(after.co2_kg, rel=1e-9)  # logs and ledger agree
    assert resumed.state_dict()["intervals_done"] == len(before.intervals) + 2
