"""The one metric schema every adapter publishes (documented in docs/metrics.md).

Component figures (`gpu_kwh`, `cpu_kwh`, `ram_kwh`) are measured at the device;
`energy_kwh` is their sum x PUE (the facility's energy); `co2_kg` = `energy_kwh` x
intensity / 1000. `*_total` are the run's running totals. Every published dict is built
here: per interval, a run's totals, a stage's own keys, and keys re-prefixed for a framework.
"""

from __future__ import annotations

from collections.abc import Mapping

from carbonlog.interval import Interval, Summary
from carbonlog.units import kwh_from_j

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
OPTIONAL_KEYS = (
    "co2_saved_vs_scratch_kg",
    "forecast_co2_kg",
    "forecast_energy_kwh",
    "energy_per_sample_j",
    "energy_per_token_j",
)
"""Keys published when known: the saving, the forecast, and (where the framework counts the
work) the interval's facility energy per sample and per input token."""
COMPACT_KEYS = ("energy_kwh", "co2_kg", "energy_kwh_total", "co2_kg_total", "power_w")
"""The default per interval: its energy and CO2, their running totals and the mean power
(plus the saving against scratch where known), so the carbon keys do not drown the user's."""
METRIC_SETS = {
    "compact": (*COMPACT_KEYS, "co2_saved_vs_scratch_kg"),
    "full": (*KEYS, *OPTIONAL_KEYS),
}
FIT_TOTAL_KEYS = ("energy_kwh_total", "co2_kg_total", "duration_s_total")
"""A fit's totals at its end; not `duration_s`, which is each epoch's own length."""
STAGE_TOTAL_KEYS = (
    "energy_kwh_total",
    "co2_kg_total",
    "duration_s",
    "energy_kwh",
    "co2_kg",
    "intensity_g_per_kwh",
)
"""A standalone validate/test/predict run's figures, under `<prefix><stage>/`."""


def metric_key(name: str, prefix: str = DEFAULT_PREFIX, stage: str | None = None) -> str:
    """`carbon/co2_kg`, or `carbon/test/co2_kg` for a stage's own keys (inference)."""
    return f"{prefix}{stage}/{name}" if stage else f"{prefix}{name}"


def _keyed(values: Mapping[str, float | None], prefix: str, stage: str | None) -> dict[str, float]:
    return {
        metric_key(name, prefix, stage): float(value)
        for name, value in values.items()
        if value is not None
    }


def check_metric_set(name: str) -> str:
    """A ValueError unless `name` is one of METRIC_SETS."""
    if name not in METRIC_SETS:
        raise ValueError(f"metrics must be one of {tuple(METRIC_SETS)}, got {name!r}")
    return name


def to_dict(
    interval: Interval,
    prefix: str = DEFAULT_PREFIX,
    stage: str | None = None,
    saved_vs_scratch_kg: float | None = None,
    keys: str = "full",
) -> dict[str, float]:
    """An interval as the schema dict: every value a float, optional keys only when known;
    `keys` names the set (METRIC_SETS: "compact" or "full")."""
    values = {
        "energy_kwh": interval.energy_kwh,
        "co2_kg": interval.co2_kg,
        "energy_kwh_total": interval.energy_kwh_total,
        "co2_kg_total": interval.co2_kg_total,
        "gpu_kwh": kwh_from_j(interval.gpu_j),
        "cpu_kwh": kwh_from_j(interval.cpu_j),
        "ram_kwh": kwh_from_j(interval.ram_j),
        "power_w": interval.power_w,
        "intensity_g_per_kwh": interval.intensity_g_per_kwh,
        "duration_s": interval.duration_s,
        "co2_saved_vs_scratch_kg": saved_vs_scratch_kg,
        "forecast_co2_kg": interval.forecast_co2_kg,
        "forecast_energy_kwh": interval.forecast_energy_kwh,
        "energy_per_sample_j": interval.energy_per_sample_j,
        "energy_per_token_j": interval.energy_per_token_j,
    }
    wanted = METRIC_SETS[keys]
    return _keyed({k: v for k, v in values.items() if k in wanted}, prefix, stage)


def totals_dict(
    summary: Summary,
    prefix: str = DEFAULT_PREFIX,
    stage: str | None = None,
    saved_vs_scratch_kg: float | None = None,
) -> dict[str, float]:
    """A run's figures at its end: a fit's totals (stage None), or a stage's own keys.

    Empty when the run closed no interval.
    """
    if not summary.intervals:
        return {}
    values: dict[str, float | None] = {
        "energy_kwh_total": summary.energy_kwh,
        "co2_kg_total": summary.co2_kg,
    }
    if stage is None:
        values["duration_s_total"] = summary.duration_s
        values["co2_saved_vs_scratch_kg"] = saved_vs_scratch_kg
    else:
        values["duration_s"] = summary.duration_s
        values["energy_kwh"] = summary.energy_kwh
        values["co2_kg"] = summary.co2_kg
        values["intensity_g_per_kwh"] = summary.intervals[-1].intensity_g_per_kwh
    return _keyed(values, prefix, stage)


def renamed(values: Mapping[str, float], old: str, new: str) -> dict[str, float]:
    """The keys that start with `old`, re-prefixed with `new`: `carbon/step/energy_kwh` ->
    `eval_carbon/energy_kwh` for the Trainer's `eval_`/`test_` metric prefixes."""
    return {new + key[len(old) :]: value for key, value in values.items() if key.startswith(old)}


def provenance(
    site: Mapping[str, object],
    measured: tuple[str, ...],
    estimated: tuple[str, ...],
    prefix: str = DEFAULT_PREFIX,
) -> dict[str, str | float]:
    """The run's provenance for a logger's run metadata (hyperparameters, config, tags), said
    once rather than as series: where the energy was drawn (`site`, what Site.describe()
    gives), the intensity with its source and year, the PUE, and which of the `measured`
    components were estimated rather than read from a counter."""
    values = {
        "location": site.get("location"),
        "intensity_g_per_kwh": site.get("g_per_kwh"),
        "intensity_source": site.get("source"),
        "intensity_year": site.get("year"),
        "pue": site.get("pue"),
        "measured": ",".join(c for c in measured if c not in estimated) or "none",
        "estimated": ",".join(c for c in measured if c in estimated) or "none",
    }
    return {f"{prefix}{k}": v for k, v in values.items() if v is not None}
