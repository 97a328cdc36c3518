"""A run's account: each window's joules, summed over ranks, made an Interval (facility energy
at the PUE, CO2 at the intensity shared, the running totals, the forecast, the work, embodied
emissions and water), the intervals kept, the budget's verdict, the status the ledger stores
and the Summary. Pure arithmetic on what the Tracker hands it: no meters, no I/O."""

from __future__ import annotations

from collections import deque

from carbonlog import units
from carbonlog._log import say
from carbonlog.interval import Interval, Summary
from carbonlog.meters import COMPONENTS
from carbonlog.tracking.budget import Budget, forecast_of
from carbonlog.tracking.edges import Window
from carbonlog.tracking.footprint import WaterRate
from carbonlog.tracking.sync import Shared
from carbonlog.tracking.totals import RunTotals

EPOCH = "epoch"
INTERVALS_KEPT = 1000
"""Intervals held in memory: totals, forecast and budget need none of them, so a run of
20,000 marks holds the last thousand (about 0.7 MB) and the ledger holds every one."""


class Account:
    """The totals, intervals and budget verdict of one run, interval by interval."""

    def __init__(self, pue: float, budget: Budget, planned_epochs: int | None):
        self.pue = pue
        self.budget = budget
        self.planned_epochs = planned_epochs
        self.totals = RunTotals()
        self.intervals: deque[Interval] = deque(maxlen=INTERVALS_KEPT)
        self.stop_reason: str | None = None
        self.embodied_kg_per_s: float | None = None
        self.water = WaterRate(None, None)

    def embodied_kg(self, duration_s: float) -> float | None:
        """This process's devices' embodied share over `duration_s`; None without a row."""
        rate = self.embodied_kg_per_s
        return None if rate is None else rate * duration_s

    def close(self, label: str, shared: Shared, intensity: tuple[float, str]) -> Interval:
        """The interval of a window summed over ranks: totals, forecast, budget, in that order."""
        index = self.totals.intervals
        device_j = shared.joules.device_j
        energy_kwh = units.facility_kwh(device_j, self.pue)
        co2_kg = units.co2_kg(energy_kwh, intensity[0])
        self.totals.add(shared.joules, energy_kwh, co2_kg, label == EPOCH)
        totals = (self.totals.energy_kwh, self.totals.co2_kg)
        forecast = forecast_of(self.totals, self.planned_epochs) if label == EPOCH else (None, None)
        interval = interval_of(
            label,
            index,
            shared.window,
            self.pue,
            intensity,
            totals,
            forecast,
            (shared.samples, shared.tokens, shared.embodied_kg),
            self.water.water_l(units.kwh_from_j(device_j), energy_kwh),
        )
        self.totals.sums.add(interval)
        self.intervals.append(interval)
        if label == EPOCH:
            self._check_budget()
        return interval

    def stored_status(self, status: str, alone_from: int | None) -> tuple[str, str | None]:
        """The status and reason the ledger keeps: a run that a budget stopped is "budget";
        one whose sum over processes failed (at interval `alone_from`) holds this process's
        figures alone from then on, so it is "incomplete", not "completed"."""
        status = self.budget.final_status(status, self.stop_reason)
        if alone_from is None or status != "completed":
            return status, self.stop_reason
        return "incomplete", (
            f"the sum over processes failed at interval {alone_from}: "
            "from there on the figures are this process's own"
        )

    def summary(self, status: str, duration_s: float, **facts) -> Summary:
        """The run's Summary; `facts` are the Tracker's (run_name, hardware, site, run_id)."""
        joules, sums = self.totals.joules, self.totals.sums
        return Summary(
            status=status,
            duration_s=duration_s,
            gpu_j=joules.gpu_j,
            cpu_j=joules.cpu_j,
            ram_j=joules.ram_j,
            energy_kwh=self.totals.energy_kwh,
            co2_kg=self.totals.co2_kg,
            intervals=list(self.intervals),
            stop_reason=self.stop_reason,
            band_j=sums.band_j,
            methods=sums.methods,
            samples=sums.samples,
            tokens=sums.tokens,
            embodied_kg=sums.embodied_kg,
            water_l=sums.water_l,
            **facts,
        )

    def _check_budget(self) -> None:
        """Decide once, from totals every rank shares, so all ranks stop at the same epoch."""
        if self.stop_reason is not None:
            return
        t = self.totals
        why = self.budget.verdict(t.co2_kg, t.energy_kwh, t.epoch_kg, t.epoch_kwh)
        if why is not None:
            self.stop_reason = f"budget: {why}"
            action = "stopping training" if self.budget.action == "stop" else "training goes on"
            say(f"carbonlog: {why}; {action}")


def interval_of(
    label: str,
    index: int,
    window: Window,
    pue: float,
    intensity: tuple[float, str],
    totals: tuple[float, float],
    forecast: tuple[float | None, float | None] = (None, None),
    work: tuple[float | None, float | None, float | None] = (None, None, None),
    water: float | None = None,
) -> Interval:
    """An Interval of `window`'s joules, bands and methods, with the intensity used, the
    running totals, the work (samples, tokens) and embodied kg, and the water (litres)."""
    joules = window.joules
    return Interval(
        label=label,
        index=index,
        started_at_s=window.started_at_s,
        duration_s=window.duration_s,
        gpu_j=joules.gpu_j,
        cpu_j=joules.cpu_j,
        ram_j=joules.ram_j,
        pue=pue,
        intensity_g_per_kwh=intensity[0],
        intensity_source=intensity[1],
        energy_kwh_total=totals[0],
        co2_kg_total=totals[1],
        estimated=tuple(c for c in COMPONENTS if c in window.estimated),
        forecast_energy_kwh=forecast[0],
        forecast_co2_kg=forecast[1],
        band_j=window.band_j,
        methods=window.methods,
        samples=work[0],
        tokens=work[1],
        embodied_kg=work[2],
        water_l=water,
    )
