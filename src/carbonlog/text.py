"""Plain-text lines for the terminal: an interval, a run's totals."""

from __future__ import annotations

from carbonlog.interval import Interval, Summary
from carbonlog.units import J_PER_KWH


def format_co2(kg: float) -> str:
    """Three significant digits: grams below 1 kg (small runs never print as 0.000 kg), then kg,
    then tonnes."""
    if abs(kg) < 1:
        return f"{kg * 1000:.3g} g"
    return f"{kg:.3g} kg" if abs(kg) < 1000 else f"{kg / 1000:.3g} t"


def format_interval(interval: Interval) -> str:
    """`epoch 3: 0.0012 kWh, 0.54 g CO2 (gpu 0.001, cpu 0.0001, ram 1e-05 kWh) in 12.3 s, 45 W`."""
    parts = ", ".join(
        f"{name} {joules / J_PER_KWH:.3g}"
        for name, joules in (
            ("gpu", interval.gpu_j),
            ("cpu", interval.cpu_j),
            ("ram", interval.ram_j),
        )
        if joules
    )
    estimated = f" [estimated: {', '.join(interval.estimated)}]" if interval.estimated else ""
    return (
        f"{interval.label} {interval.index}: {interval.energy_kwh:.4g} kWh, "
        f"{format_co2(interval.co2_kg)} CO2 ({parts or 'nothing measured'} kWh) in "
        f"{interval.duration_s:.1f} s, {interval.power_w:.0f} W{estimated}"
    )


def format_summary(summary: Summary, stage: str = "run") -> str:
    """One line of totals with the intensity and PUE that produced them."""
    site = summary.site
    return (
        f"carbonlog: {stage} used {summary.energy_kwh:.4g} kWh and {format_co2(summary.co2_kg)} "
        f"CO2 in {summary.duration_s:.1f} s (gpu {summary.gpu_j / J_PER_KWH:.3g}, "
        f"cpu {summary.cpu_j / J_PER_KWH:.3g}, ram {summary.ram_j / J_PER_KWH:.3g} kWh; "
        f"{site.get('location', '?')}, {site.get('g_per_kwh', float('nan')):.0f} g/kWh, "
        f"PUE {site.get('pue', 1.0):.2f})"
    )
