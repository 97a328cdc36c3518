"""One row per interval, as every table shows it: the CLI's, the HTML report's, the demo's.

Intervals are the Tracker's `Interval`s or the ledger's stored ones (both carry the same
joules, facility kWh and CO2); the row holds the figures, the tables pick and format them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from carbonlog.units import kwh_from_j


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

    @property
    def name(self) -> str:
        """`epoch 3` for epochs, else the label."""
        return f"epoch {self.label}" if self.label.isdigit() else self.label


def interval_labels(intervals: Sequence) -> list[str]:
    """`1, 2, 3, end`: epochs by their number (from 1), other intervals by their label."""
    labels, epoch = [], 0
    for interval in intervals:
        if interval.label == "epoch":
            epoch += 1
            labels.append(str(epoch))
        else:
            labels.append(str(interval.label))
    return labels


def interval_rows(intervals: Sequence) -> list[IntervalRow]:
    """A row for each interval, in order."""
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
        )
        for label, iv in zip(interval_labels(intervals), intervals, strict=True)
    ]
