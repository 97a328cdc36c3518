"""The tracker's parts alone: joules, the one sum, totals and resume state, budget, options,
and the edges' carry-over when a meter fails between a peek and the epoch's end."""

from __future__ import annotations

import math
import time

import pytest

import carbonlog.meters
from carbonlog.errors import ConfigurationError
from carbonlog.meters import ConstantPowerMeter
from carbonlog.tracking import check_options, check_state
from carbonlog.tracking.budget import Budget, forecast_total
from carbonlog.tracking.edges import Edges
from carbonlog.tracking.joules import Joules
from carbonlog.tracking.sync import sum_over_ranks
from carbonlog.tracking.totals import RunTotals


class BrokenAfter(ConstantPowerMeter):
    """A counter meter whose reads raise once `reads` reaches `fail_at`."""

    estimated = False

    def __init__(self, power_w: float, fail_at: int, fail_start: bool = False):
        super().__init__("gpu", power_w, "broken gpu")
        self.reads, self.fail_at, self.fail_start = 0, fail_at, fail_start

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("no such device")
        super().start()

    def energy_j(self) -> float:
        self.reads += 1
        if self.reads >= self.fail_at:
            raise RuntimeError("GPU is lost")
        return super().energy_j()

    def fallback(self) -> ConstantPowerMeter:
        return ConstantPowerMeter("gpu", 10.0, "estimate")


def test_joules_add_and_travel_as_one_vector():
    a, b = Joules(1.0, 2.0, 3.0), Joules.of({"gpu": 10.0, "ram": 1.0})
    assert a + b == Joules(11.0, 2.0, 4.0)
    assert Joules.from_vector((a + b).vector()) == a + b
    assert (a + b).device_j == 17.0


def test_one_sum_carries_every_part_and_a_failed_sum_keeps_the_local_parts():
    calls = []

    def doubled(values):
        calls.append(list(values))
        return [2 * v for v in values]

    piece, whole = sum_over_ranks(doubled, Joules(1, 2, 3), Joules(4, 5, 6))
    assert (piece, whole) == (Joules(2, 4, 6), Joules(8, 10, 12))
    assert calls == [[1, 2, 3, 4, 5, 6]]  # one collective, not one per part

    def broken(_):
        raise OSError("peer went away")

    assert sum_over_ranks(broken, Joules(1, 2, 3)) == (Joules(1, 2, 3),)


def test_totals_round_trip_through_the_resume_state():
    totals = RunTotals()
    totals.add(Joules(3.6e6, 0, 0), 1.0, 0.1, epoch=True)
    totals.add(Joules(0, 3.6e6, 0), 1.0, 0.1, epoch=False)
    state = totals.state_dict(run_id=7)
    check_state(state)
    again = RunTotals.from_state(state)
    assert again == totals and again.epochs_done == 1 and state["run_id"] == 7


GOOD_STATE = RunTotals(Joules(1.0, 2.0, 3.0), 1e-6, 1e-7, [1e-6], [1e-7]).state_dict(run_id=3)


@pytest.mark.parametrize(
    "damage",
    [
        {"totals_j": {"gpu": -1.0, "cpu": 0.0, "ram": 0.0}},
        {"totals_j": {"gpu": math.nan, "cpu": 0.0, "ram": 0.0}},
        {"totals_j": [1, 2, 3]},
        {"totals_j": {"gpu": "1", "cpu": 0.0, "ram": 0.0}},
        {"energy_kwh_total": math.inf},
        {"co2_kg_total": None},
        {"co2_kg_total": True},
        {"epochs_done": "three"},
        {"epochs_done": 0},  # fewer than the epochs it lists
        {"epoch_kwh": ["a lot"]},
        {"epoch_kwh": [1e-6, 2e-6]},  # longer than epoch_kg
        {"epoch_kg": 5},
        {"run_id": "seven"},
        {"version": "2"},
    ],
)
def test_every_kind_of_damaged_state_is_refused_with_what_is_wrong(damage):
    check_state(GOOD_STATE)
    with pytest.raises(ValueError, match="not a carbonlog tracker state: "):
        check_state({**GOOD_STATE, **damage})


@pytest.mark.parametrize("state", [None, [], "state", 3])
def test_a_state_that_is_not_a_mapping_is_refused(state):
    with pytest.raises(ValueError, match="not a mapping"):
        check_state(state)


def test_a_newer_state_is_read_where_it_can_be_and_else_refused_as_newer():
    newer = {**GOOD_STATE, "version": 99, "carbon_by_region": {"FR": 1.0}}
    check_state(newer)
    assert RunTotals.from_state(newer).energy_kwh == 1e-6
    with pytest.raises(ValueError, match="written by a newer carbonlog"):
        check_state({**newer, "totals_j": {"gpu_and_cpu": 1.0}})


@pytest.mark.parametrize(
    ("budget", "totals", "over"),
    [
        (Budget(kg=1.0), (1.0, 0.0), True),
        (Budget(kg=1.0), (0.99, 0.0), False),
        (Budget(kwh=2.0), (0.0, 2.5), True),
        (Budget(kg=1.0, check="forecast"), (0.7, 0.0), True),  # 0.7 + 0.4 crosses 1.0
        (Budget(kg=1.0, check="forecast"), (0.5, 0.0), False),
        (Budget(), (1e9, 1e9), False),
    ],
)
def test_budget_verdict(budget, totals, over):
    kg, kwh = totals
    why = budget.verdict(kg, kwh, epoch_kg=[0.1, 0.4, 0.4], epoch_kwh=[1.0, 1.0])
    assert (why is not None) is over


def test_the_tracker_decides_the_budget_status_not_the_ledger():
    assert Budget(kg=1, action="stop").final_status("completed", "budget: over") == "budget"
    assert Budget(kg=1, action="warn").final_status("completed", "budget: over") == "completed"
    assert Budget(kg=1, action="stop").final_status("failed", "budget: over") == "failed"
    assert Budget(kg=1, action="stop").final_status("completed", None) == "completed"


def test_forecast_is_done_plus_the_robust_epoch_cost():
    assert forecast_total([5.0, 1.0, 1.2, 0.8], remaining=6, done_total=8.0) == 14.0
    assert forecast_total([5.0], remaining=0, done_total=5.0) == 5.0


@pytest.mark.parametrize(
    "bad",
    [
        {"budget_kg": -1},
        {"budget_kwh": math.inf},
        {"budget_kg": True},
        {"on_budget": "explode"},
        {"budget_check": "vibes"},
        {"run_name": 3},
        {"ledger": 1.5},
        {"tags": 7},
        {"location": "Atlantis"},
        {"gpus": "all"},
    ],
)
def test_check_options_names_what_is_wrong(bad):
    with pytest.raises(ValueError):
        check_options(intensity=100.0, **bad)


def test_check_options_opens_no_meter_and_refuses_unknown_options(monkeypatch):
    def no_meters(**_):
        raise AssertionError("a meter was opened")

    monkeypatch.setattr(carbonlog.meters, "build_meters", no_meters)
    checked = check_options(location="FR", budget_kg=1.0, on_budget="stop")
    assert checked.site.grid.code == "FR" and checked.budget.action == "stop"
    with pytest.raises(TypeError):
        check_options(location="FR", locaton="DE")
    with pytest.raises(ConfigurationError):
        check_options(intensity=100.0, on_budget="explode")


def test_a_meter_failing_after_a_peek_carries_the_whole_open_interval():
    edges = Edges([BrokenAfter(100.0, fail_at=3)], sync=None)
    edges.open()
    time.sleep(0.05)
    first = edges.close()  # read 1: measured, sets the mean power
    time.sleep(0.05)
    piece, _ = edges.peek()  # read 2: measured
    time.sleep(0.05)
    faulted = edges.close()  # read 3 raises: the interval at the mean power, flagged
    time.sleep(0.05)
    after = edges.close()
    assert first.estimated == frozenset() and piece.estimated == frozenset()
    assert faulted.estimated == {"gpu"}
    assert faulted.joules.gpu_j == pytest.approx(100.0 * faulted.duration_s, rel=0.05)
    assert after.joules.gpu_j == pytest.approx(10.0 * after.duration_s, rel=0.1)


def test_a_meter_that_cannot_start_is_estimated_from_the_first_interval():
    edges = Edges([BrokenAfter(100.0, fail_at=99, fail_start=True)], sync=None)
    edges.open()
    time.sleep(0.05)
    window = edges.close()
    assert window.estimated == {"gpu"}
    assert window.joules.gpu_j == pytest.approx(10.0 * window.duration_s, rel=0.1)
    assert edges.hardware()["gpu"] == [{"name": "estimate", "power_w": 10.0}]


def test_a_meter_failing_at_the_first_edge_is_estimated_at_its_fallback_and_flagged():
    edges = Edges([BrokenAfter(100.0, fail_at=1)], sync=None)
    edges.open()
    time.sleep(0.05)
    first = edges.close()
    assert first.estimated == {"gpu"}
    assert first.joules.gpu_j == pytest.approx(10.0 * first.duration_s, rel=0.1)


class SteppedCounter(BrokenAfter):
    """A counter whose power can change: joules accumulate at the power of each stretch."""

    def start(self) -> None:
        self._total_j, self._since_s = 0.0, time.monotonic()

    def set_power(self, power_w: float) -> None:
        now_s = time.monotonic()
        self._total_j += self.power_w * (now_s - self._since_s)
        self.power_w, self._since_s = power_w, now_s

    def energy_j(self) -> float:
        self.reads += 1
        if self.reads >= self.fail_at:
            raise RuntimeError("GPU is lost")
        return self._total_j + self.power_w * (time.monotonic() - self._since_s)


def test_a_fault_keeps_what_was_measured_before_it_and_estimates_only_the_gap():
    meter = SteppedCounter(100.0, fail_at=3)
    edges = Edges([meter], sync=None)
    edges.open()
    time.sleep(0.05)
    edges.close()  # read 1: 100 W measured, the mean power for the estimate
    meter.set_power(1000.0)
    time.sleep(0.1)
    piece, _ = edges.peek()  # read 2: 1000 W measured over most of the open interval
    faulted = edges.close()  # read 3 raises: the measured part is kept, the gap at 100 W
    assert faulted.estimated == {"gpu"}
    assert piece.joules.gpu_j == pytest.approx(100.0, rel=0.2)
    assert faulted.joules.gpu_j == pytest.approx(piece.joules.gpu_j, rel=0.05)
