"""The one metric schema every adapter publishes (documented in docs/metrics.md).

Component figures (`gpu_kwh`, `cpu_kwh`, `ram_kwh`) are measured at the device;
`energy_kwh` is their sum x PUE (the facility's energy); `co2_kg` = `energy_kwh` x
intensity / 1000. `*_total` are the run's running totals.
"""

from __future__ import annotations

from carbonlog.interval import J_PER_KWH, Interval

DEFAULT_PREFIX = "carbon/"

KEYS = (
    "energy_kwh",
    "co2_kg",
    "energy_kwh_total",
    "co2_kg_total",
    "gpu_kwh",
    "cpu_kwh",
    "ram_kwh",
    "power_w",
    "intensity_g_per_kwh",
    "duration_s",
)
OPTIONAL_KEYS = ("co2_saved_vs_scratch_kg", "forecast_co2_kg", "forecast_energy_kwh")


def metric_key(name: str, prefix: str = DEFAULT_PREFIX, stage: str | None = None) -> str:
    """`carbon/co2_kg`, or `carbon/test/co2_kg` for a stage's own keys (inference)."""
    return f"{prefix}{stage}/{name}" if stage else f"{prefix}{name}"


def to_dict(
    interval: Interval,
    prefix: str = DEFAULT_PREFIX,
    stage: str | None = None,
    saved_vs_scratch_kg: float | None = None,
) -> dict[str, float]:
    """An interval as the schema dict: every value a float, optional keys only when known."""
    values = {
        "energy_kwh": interval.energy_kwh,
        "co2_kg": interval.co2_kg,
        "energy_kwh_total": interval.energy_kwh_total,
        "co2_kg_total": interval.co2_kg_total,
        "gpu_kwh": interval.gpu_j / J_PER_KWH,
        "cpu_kwh": interval.cpu_j / J_PER_KWH,
        "ram_kwh": interval.ram_j / J_PER_KWH,
        "power_w": interval.power_w,
        "intensity_g_per_kwh": interval.intensity_g_per_kwh,
        "duration_s": interval.duration_s,
        "co2_saved_vs_scratch_kg": saved_vs_scratch_kg,
        "forecast_co2_kg": interval.forecast_co2_kg,
        "forecast_energy_kwh": interval.forecast_energy_kwh,
    }
    return {
        metric_key(name, prefix, stage): float(value)
        for name, value in values.items()
        if value is not None
    }
