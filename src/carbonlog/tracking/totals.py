"""A run's running totals, per epoch and overall, and the state that carries them over a resume."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from carbonlog.interval import RunSums
from carbonlog.meters.base import COMPONENTS
from carbonlog.tracking.joules import Joules

STATE_VERSION = 1


def _amount(value: object, what: str) -> float:
    """A finite number >= 0 (not a bool, not a string), else a ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is {value!r}, not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} is {value!r}, not a finite number >= 0")
    return float(value)


def _check_state(state: object) -> None:
    if not isinstance(state, Mapping):
        raise ValueError(f"a {type(state).__name__}, not a mapping")
    version = state.get("version", STATE_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version is {version!r}")
    totals_j = state.get("totals_j")
    if not isinstance(totals_j, Mapping):
        raise ValueError(f"totals_j is {totals_j!r}, not a mapping of joules per component")
    for component in COMPONENTS:
        _amount(totals_j.get(component), f"totals_j[{component!r}]")
    for key in ("energy_kwh_total", "co2_kg_total"):
        _amount(state.get(key), key)
    series = [state.get(key, []) for key in ("epoch_kwh", "epoch_kg")]
    for key, values in zip(("epoch_kwh", "epoch_kg"), series, strict=True):
        if not isinstance(values, list | tuple):
            raise ValueError(f"{key} is {values!r}, not a list")
        for i, value in enumerate(values):
            _amount(value, f"{key}[{i}]")
    if len(series[0]) != len(series[1]):
        raise ValueError("epoch_kwh and epoch_kg differ in length")
    epochs = state.get("epochs_done", len(series[0]))
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < len(series[0]):
        raise ValueError(f"epochs_done is {epochs!r}, not a count of at least {len(series[0])}")
    intervals = state.get("intervals_done", 0)
    if isinstance(intervals, bool) or not isinstance(intervals, int) or intervals < 0:
        raise ValueError(f"intervals_done is {intervals!r}, not a count")
    run_id = state.get("run_id")
    if run_id is not None and (isinstance(run_id, bool) or not isinstance(run_id, int)):
        raise ValueError(f"run_id is {run_id!r}, not an integer")


def check_state(state: object) -> None:
    """A ValueError, saying what is wrong, unless `state` is what RunTotals.state_dict() writes.

    A state from a newer carbonlog is accepted when every field this version reads is sound.
    """
    try:
        _check_state(state)
    except ValueError as exc:
        newer = isinstance(state, Mapping) and _is_newer(state.get("version"))
        written = " (written by a newer carbonlog)" if newer else ""
        raise ValueError(f"not a carbonlog tracker state{written}: {exc}") from None


def _is_newer(version: object) -> bool:
    return isinstance(version, int) and not isinstance(version, bool) and version > STATE_VERSION


@dataclass
class RunTotals:
    """Joules per component, facility kWh and kg CO2 so far, and each epoch's kWh and kg.

    `epochs_before_resume` counts epochs of an earlier part of the run whose figures the
    resume state did not carry one by one; `intervals` counts every closed interval, so a
    resumed run's go on from the last index; `sums` are the run's band, work, embodied and
    water (the tracker adds each interval to them).
    """

    joules: Joules = field(default_factory=Joules)
    energy_kwh: float = 0.0
    co2_kg: float = 0.0
    epoch_kwh: list[float] = field(default_factory=list)
    epoch_kg: list[float] = field(default_factory=list)
    epochs_before_resume: int = 0
    intervals: int = 0
    sums: RunSums = field(default_factory=RunSums)

    @property
    def epochs_done(self) -> int:
        """Epoch intervals so far, those before a resume included."""
        return self.epochs_before_resume + len(self.epoch_kwh)

    def add(self, joules: Joules, energy_kwh: float, co2_kg: float, epoch: bool) -> None:
        """Count one closed interval; an epoch's also goes into the per-epoch history."""
        self.joules += joules
        self.energy_kwh += energy_kwh
        self.co2_kg += co2_kg
        self.intervals += 1
        if epoch:
            self.epoch_kwh.append(energy_kwh)
            self.epoch_kg.append(co2_kg)

    def state_dict(self, run_id: int | None) -> dict:
        """The totals to carry into a resumed run (checkpoint, JSON sidecar)."""
        return {
            "version": STATE_VERSION,
            "totals_j": self.joules.by_component(),
            "energy_kwh_total": self.energy_kwh,
            "co2_kg_total": self.co2_kg,
            "epochs_done": self.epochs_done,
            "epoch_kwh": list(self.epoch_kwh),
            "epoch_kg": list(self.epoch_kg),
            "intervals_done": self.intervals,
            "run_id": run_id,
            "sums": self.sums.state(),
        }

    def continued(
        self, joules: Joules, energy_kwh: float, co2_kg: float, intervals: int, sums: RunSums
    ) -> RunTotals:
        """These totals, carried on from a larger record of the same run (its ledger run),
        the per-epoch history kept for the forecast and the budget."""
        return RunTotals(
            joules, energy_kwh, co2_kg, self.epoch_kwh, self.epoch_kg,
            self.epochs_before_resume, intervals, sums,
        )  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping) -> RunTotals:
        """The totals an earlier part of the run saved; a ValueError for a bad state."""
        check_state(state)
        epoch_kwh = [float(v) for v in state.get("epoch_kwh", [])]
        return cls(
            joules=Joules.of(state["totals_j"]),
            energy_kwh=float(state["energy_kwh_total"]),
            co2_kg=float(state["co2_kg_total"]),
            epoch_kwh=epoch_kwh,
            epoch_kg=[float(v) for v in state.get("epoch_kg", [])],
            epochs_before_resume=int(state.get("epochs_done", len(epoch_kwh))) - len(epoch_kwh),
            intervals=int(state.get("intervals_done", 0)),
            sums=_sums(state.get("sums")),
        )


def _sums(state: object) -> RunSums:
    """The band, work, embodied and water a resume state carries; none (a state of an older
    carbonlog, or one whose sums are not sound) starts them over."""
    if not isinstance(state, Mapping):
        return RunSums()
    try:
        return RunSums.from_state(state)
    except (KeyError, TypeError, ValueError, AttributeError):
        return RunSums()
