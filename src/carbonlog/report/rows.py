"""One row per interval, as every table shows it: the CLI's, the HTML report's, the demo's.

Intervals are the Tracker's `Interval`s or the ledger's stored ones (both carry the same
joules, facility kWh and CO2); the row holds the figures, the tables pick and format them.
A long run's table shows its first and last rows (`head_and_tail`) and the totals of each
interval label (`label_totals`): 20,000 rows help no reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from carbonlog import units
from carbonlog.interval import RunBand, RunSums, quadrature
from carbonlog.units import kwh_from_j

T = TypeVar("T")
CLOSING = "end"
"""The label of the interval that closes a run (Tracker.stop())."""


@dataclass(frozen=True)
class IntervalRow:
    """An interval's figures: component kWh at the devices, facility kWh (x PUE), kg CO2."""

    label: str  # "1", "2", ... for epochs, else the interval's own label ("end")
    duration_s: float
    gpu_kwh: float
    cpu_kwh: float
    ram_kwh: float
    energy_kwh: float
    co2_kg: float
    intensity_g_per_kwh: float | None
    estimated: tuple[str, ...]  # the components estimated rather than measured
    power_w: float | None = None  # mean device power, where the interval knows it
    metrics: Mapping[str, float] = field(default_factory=dict)
    energy_band_kwh: float = 0.0  # half-width of the facility energy's band

    @property
    def name(self) -> str:
        """`epoch 3` for epochs, else the label."""
        return f"epoch {self.label}" if self.label.isdigit() else self.label


def interval_labels(intervals: Sequence, stage: str | None = None) -> list[str]:
    """`1, 2, 3, end`: epochs by their number (from 1), other intervals by their label; in a
    run of no epoch (a standalone validate, a fit stopped before its first epoch), the interval
    that closed it is the whole of its `stage`, and says so."""
    labels, epoch = [], 0
    for interval in intervals:
        if interval.label == "epoch":
            epoch += 1
            labels.append(str(epoch))
        else:
            labels.append(str(interval.label))
    if epoch == 0 and stage:
        labels = [stage if label == CLOSING else label for label in labels]
    return labels


def interval_rows(intervals: Sequence, stage: str | None = None) -> list[IntervalRow]:
    """A row for each interval, in order (labelled as `interval_labels` says)."""
    return [
        IntervalRow(
            label=label,
            duration_s=float(iv.duration_s),
            gpu_kwh=kwh_from_j(iv.gpu_j),
            cpu_kwh=kwh_from_j(iv.cpu_j),
            ram_kwh=kwh_from_j(iv.ram_j),
            energy_kwh=iv.energy_kwh,
            co2_kg=iv.co2_kg,
            intensity_g_per_kwh=iv.intensity_g_per_kwh,
            estimated=tuple(iv.estimated),
            power_w=getattr(iv, "power_w", None),
            metrics=getattr(iv, "metrics", {}),
            energy_band_kwh=units.facility_kwh(quadrature(iv.band_j.values()), iv.pue or 1.0),
        )
        for label, iv in zip(interval_labels(intervals, stage), intervals, strict=True)
    ]


def run_band(run) -> RunBand:
    """A run's band: a Summary's own, a ledger run's summed from its stored intervals."""
    band = getattr(run, "band", None)
    if isinstance(band, RunBand):
        return band
    sums = RunSums.of(run.intervals)
    return RunBand.of(sums.band_j, sums.methods, run.energy_kwh, run.co2_kg, run.site or {})


def run_methods(run) -> dict[str, str]:
    """How each component of a run was measured: a Summary's own, else from its intervals."""
    methods = getattr(run, "methods", None)
    return dict(methods) if methods is not None else RunSums.of(run.intervals).methods


def extent(run) -> tuple[str, str]:
    """(value, what it is) of a run's length, for a headline: `("3", "epochs")`; for a run of
    no epoch, its stage and its intervals: `("validate", "stage: 1 interval, no epoch")`."""
    epochs = sum(iv.label == "epoch" for iv in run.intervals)
    if epochs:
        return f"{epochs:,}", "epoch" if epochs == 1 else "epochs"
    count = len(run.intervals)
    intervals = f"{count:,} interval{'s' if count != 1 else ''}"
    stage = getattr(run, "stage", None)
    return (stage, f"stage: {intervals}, no epoch") if stage else ("run", f"{intervals}, no epoch")


def head_and_tail(rows: Sequence[T], most: int) -> tuple[list[T], int, list[T]]:
    """(the first rows, how many are left out, the last rows) of a table cut to `most` rows;
    every row, none left out, when there are no more than `most`."""
    if len(rows) <= most:
        return list(rows), 0, []
    half = most // 2
    return list(rows[:half]), len(rows) - 2 * half, list(rows[len(rows) - half :])


@dataclass(frozen=True)
class LabelTotal:
    """The intervals of one label (`epoch`, `end`, ...) summed: how many, seconds, kWh, kg."""

    label: str
    count: int
    duration_s: float
    energy_kwh: float
    co2_kg: float


def label_totals(intervals: Sequence) -> list[LabelTotal]:
    """One total per interval label, in the order the labels first appear."""
    sums: dict[str, list[float]] = {}
    for iv in intervals:
        total = sums.setdefault(str(iv.label), [0, 0.0, 0.0, 0.0])
        total[0] += 1
        total[1] += float(iv.duration_s)
        total[2] += iv.energy_kwh
        total[3] += iv.co2_kg
    return [LabelTotal(label, int(n), s, kwh, kg) for label, (n, s, kwh, kg) in sums.items()]
