"""PNG plots of runs: energy and CO2 per interval by component, cumulative CO2, and two runs'
metric against their cumulative CO2.

matplotlib is imported inside each function (pip install "carbonlog[report]") and used
through its object API with the Agg canvas: no pyplot state, no GUI backend switched, safe
inside a notebook. A run is a ledger RunRecord or a Tracker Summary. Each plot takes the Units
of the page it is on (the report's), else those of its own largest figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from carbonlog.errors import ConfigurationError
from carbonlog.report.rows import interval_labels
from carbonlog.report.text import SECONDS_PER_HOUR, Units, energy_unit, mass_unit, terminal_safe
from carbonlog.units import co2_kg, facility_kwh

COLORS = {"gpu": "#2a9d8f", "cpu": "#e9c46a", "ram": "#8d99ae"}
RUN_COLORS = ("#264653", "#e76f51", "#6a4c93", "#1982c4")
DPI = 100
MOST_BARS = 120
"""Bars per plot: a longer run's intervals are drawn in groups."""
MOST_MARKERS = 200
"""Points that get a marker on the cumulative line; a longer run's line has none."""
INSTALL_HINT = 'carbonlog\'s plots need matplotlib: pip install "carbonlog[report]"'


def _figure(rows: int = 1, height_in: float = 3.6):
    """A detached Figure (Agg canvas) with `rows` axes, sharing x."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    figure = Figure(figsize=(8.0, height_in * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, axes


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    figure.savefig(path, format="png")
    return path


def literal(value: str, most: int = 60) -> str:
    """A user string as literal matplotlib text, cut to `most` characters: `$` would start
    mathtext, and control characters (no font has them) show as their escapes."""
    text = terminal_safe(str(value))
    text = text if len(text) <= most else text[: most - 1] + "…"
    return text.replace("$", r"\$")


def _bins(count: int, most: int) -> list[range]:
    """Consecutive index ranges that cover `count` intervals in at most `most` bins."""
    size = -(-count // most)
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _per_bin(values: list[float], bins: list[range]) -> list[float]:
    """The mean of `values` over each bin."""
    return [sum(values[b.start : b.stop]) / len(b) for b in bins]


def energy_by_component(run, path: str | os.PathLike, units: Units | None = None) -> Path:
    """Stacked bars per interval: facility energy (component x PUE) and CO2, GPU/CPU/RAM.

    A run of more than MOST_BARS intervals has one bar per group of consecutive intervals,
    their mean: a bar per interval of a 20,000-interval run took minutes to draw.
    """
    intervals = list(run.intervals)
    if not intervals:
        raise ConfigurationError("the run has no recorded interval to plot")
    bins = _bins(len(intervals), MOST_BARS)
    energy, co2 = {}, {}
    for c in COLORS:
        kwh = [facility_kwh(getattr(iv, f"{c}_j"), iv.pue or 1.0) for iv in intervals]
        kg = [
            co2_kg(v, iv.intensity_g_per_kwh or 0.0) for v, iv in zip(kwh, intervals, strict=True)
        ]
        energy[c], co2[c] = _per_bin(kwh, bins), _per_bin(kg, bins)
    figure, (energy_ax, co2_ax) = _figure(rows=2, height_in=2.8)
    if units is None:
        units = Units(
            energy_unit(*map(sum, zip(*energy.values(), strict=True))),
            mass_unit(*map(sum, zip(*co2.values(), strict=True))),
        )
    grouped = len(bins[0]) > 1
    # Grouped: each bar spans its intervals on an axis of interval numbers (from 1).
    positions = [(b.start + b.stop + 1) / 2 for b in bins] if grouped else range(len(bins))
    widths = [0.9 * len(b) for b in bins] if grouped else 0.8
    for ax, values, unit in ((energy_ax, energy, units.energy), (co2_ax, co2, units.mass)):
        bottom = [0.0] * len(bins)
        for component, color in COLORS.items():
            if not any(energy[component]):
                continue
            heights = [v * unit.per_base for v in values[component]]
            ax.bar(positions, heights, widths, bottom, color=color, label=component.upper())
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    energy_ax.set_ylabel(f"energy ({units.energy.symbol})")
    energy_ax.set_title(
        "Energy and CO2 per interval by component (facility: device x PUE)"
        + (f"\neach bar: the mean of {len(bins[0]):,} consecutive intervals" if grouped else "")
    )
    co2_ax.set_ylabel(f"CO2 ({units.mass.symbol})")
    stage = getattr(run, "stage", None)
    if grouped:
        co2_ax.set_xlabel("interval (epochs, then the interval that closed the run)")
    elif not any(iv.label == "epoch" for iv in intervals):
        co2_ax.set_xlabel(literal(f"{stage or 'the run'}: no epoch"))
        _label_intervals(co2_ax, interval_labels(intervals, stage))
    else:
        co2_ax.set_xlabel("epoch (then the interval that closed the run)")
        _label_intervals(co2_ax, interval_labels(intervals, stage))
    for ax in (energy_ax, co2_ax):
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def _label_intervals(ax, labels: list[str], most: int = 25) -> None:
    """Tick labels under the bars, thinned to at most `most`."""
    step = max(1, -(-len(labels) // most))
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([literal(labels[i]) for i in ticks])


def cumulative(run) -> tuple[list[float], list[float]]:
    """(elapsed seconds, cumulative kg CO2) at each interval's end, from (0, 0)."""
    seconds, kg = [0.0], [0.0]
    for interval in run.intervals:
        seconds.append(seconds[-1] + float(interval.duration_s))
        kg.append(kg[-1] + float(interval.co2_kg))
    return seconds, kg


def cumulative_co2(run, path: str | os.PathLike, units: Units | None = None) -> Path:
    """The run's CO2 so far against elapsed time, a marker at each interval's end."""
    seconds, kg = cumulative(run)
    if len(seconds) < 2:
        raise ConfigurationError("the run has no recorded interval to plot")
    figure, (ax,) = _figure()
    mass = units.mass if units is not None else mass_unit(*kg)
    t_factor, t_unit = (1 / SECONDS_PER_HOUR, "h") if seconds[-1] >= 7200 else (1 / 60, "min")
    if seconds[-1] < 120:
        t_factor, t_unit = 1.0, "s"
    ax.plot(
        [s * t_factor for s in seconds],
        [v * mass.per_base for v in kg],
        marker="o" if len(seconds) <= MOST_MARKERS else None,
        markersize=3,
        color=RUN_COLORS[0],
    )
    ax.set_xlabel(f"elapsed time ({t_unit})")
    ax.set_ylabel(f"cumulative CO2 ({mass.symbol})")
    ax.set_title(f"Cumulative CO2: {mass(kg[-1])} in total")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def metric_points(run, metric: str) -> tuple[list[float], list[float]]:
    """(cumulative kg CO2, metric value) at each interval end that reported `metric`."""
    xs, ys, kg = [], [], 0.0
    for interval in run.intervals:
        kg += float(interval.co2_kg)
        value = getattr(interval, "metrics", {}).get(metric)
        if value is not None:
            xs.append(kg)
            ys.append(float(value))
    return xs, ys


def co2_vs_metric(
    runs: Sequence,
    metric: str,
    path: str | os.PathLike,
    target: float | None = None,
    units: Units | None = None,
) -> Path:
    """Each run's `metric` against its cumulative CO2, with the target as a dashed line."""
    points = [(run, *metric_points(run, metric)) for run in runs]
    if not any(xs for _, xs, _ in points):
        raise ConfigurationError(f"no run reported the metric {metric!r}")
    figure, (ax,) = _figure(height_in=4.0)
    mass = units.mass if units is not None else mass_unit(*(x for _, xs, _ in points for x in xs))
    for index, (run, xs, ys) in enumerate(points):
        ax.plot(
            [x * mass.per_base for x in xs],
            ys,
            marker="o",
            markersize=4,
            color=RUN_COLORS[index % len(RUN_COLORS)],
            label=literal(getattr(run, "label", None) or f"run {index + 1}"),
        )
    if target is not None:
        ax.axhline(target, color="#999999", linestyle="--", label=f"target {target:g}")
    ax.set_xlabel(f"cumulative CO2 ({mass.symbol})")
    ax.set_ylabel(literal(metric))
    ax.set_title(literal(f"{metric} against the CO2 it took"))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(figure, path)
