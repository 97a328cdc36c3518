"""What the whole run will cost (the forecast), and whether it stays within its budget.

The decision is taken from totals every rank shares, so all ranks stop at the same epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from carbonlog.errors import ConfigurationError
from carbonlog.tracking.totals import RunTotals

BUDGET_ACTIONS = ("warn", "stop")
BUDGET_CHECKS = ("total", "forecast")
BUDGET_STATUS = "budget"
"""The ledger status of a run that a budget with on_budget="stop" ended."""


def per_epoch_estimate(values: Sequence[float]) -> float:
    """A robust cost of one more epoch: the median of the epochs after the first.

    The first epoch carries compilation, data-loader warm-up and sanity checks, so it is
    left out as soon as a second epoch exists; the median then ignores single outliers.
    """
    if not values:
        raise ValueError("no epoch to forecast from")
    steady = values[1:] if len(values) > 1 else values
    ordered = sorted(steady)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def forecast_total(values: Sequence[float], remaining: int, done_total: float) -> float:
    """The run's final total: what is done plus `remaining` epochs at the robust per-epoch cost."""
    return done_total + max(remaining, 0) * per_epoch_estimate(values)


def forecast_of(totals: RunTotals, planned_epochs: int | None) -> tuple[float | None, float | None]:
    """The run's final kWh and kg at its planned length, when that is known."""
    if not planned_epochs:
        return None, None
    remaining = planned_epochs - totals.epochs_done
    return (
        forecast_total(totals.epoch_kwh, remaining, totals.energy_kwh),
        forecast_total(totals.epoch_kg, remaining, totals.co2_kg),
    )


def check_limit(name: str, value: float | None) -> None:
    """A ConfigurationError unless `value` is None or a finite number >= 0."""
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Budget:
    """Limits on a run's CO2 (kg) and energy (kWh), what to do past them, and how to judge.

    `check="total"` acts once the running total reaches a limit; `check="forecast"` acts
    when the next epoch, at the robust per-epoch cost, would cross it.
    """

    kg: float | None = None
    kwh: float | None = None
    action: str = "warn"
    check: str = "total"

    def __post_init__(self) -> None:
        check_limit("budget_kg", self.kg)
        check_limit("budget_kwh", self.kwh)
        if self.action not in BUDGET_ACTIONS:
            raise ConfigurationError(
                f"on_budget must be one of {BUDGET_ACTIONS}, got {self.action!r}"
            )
        if self.check not in BUDGET_CHECKS:
            raise ConfigurationError(
                f"budget_check must be one of {BUDGET_CHECKS}, got {self.check!r}"
            )

    def verdict(
        self,
        co2_kg_total: float,
        energy_kwh_total: float,
        epoch_kg: Sequence[float],
        epoch_kwh: Sequence[float],
    ) -> str | None:
        """Why the run is over its budget, or None while it is within it."""
        for unit, limit, total, per_epoch in (
            ("kg CO2", self.kg, co2_kg_total, epoch_kg),
            ("kWh", self.kwh, energy_kwh_total, epoch_kwh),
        ):
            if limit is None:
                continue
            if self.check == "forecast":
                next_total = forecast_total(per_epoch, 1, total)
                if next_total > limit:
                    return (
                        f"the next epoch would bring the run to {next_total:.4g} {unit}, "
                        f"over its budget of {limit:.4g} {unit}"
                    )
            elif total >= limit:
                return f"the run reached {total:.4g} {unit}, its budget is {limit:.4g} {unit}"
        return None

    def final_status(self, status: str, stop_reason: str | None) -> str:
        """The status a run is stored with: "budget" for a completed run this budget stopped."""
        if status == "completed" and stop_reason and self.action == "stop":
            return BUDGET_STATUS
        return status
