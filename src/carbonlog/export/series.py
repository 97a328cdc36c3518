"""What the exporters publish, named once for both: each schema figure (carbonlog.metrics) as
a monitoring series with its kind and unit, the run's labels, and an interval's values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from carbonlog import metrics
from carbonlog.interval import Interval

COUNTER = "counter"
"""A running total of the run (it resumes with the run, so it is set, never added to)."""
GAUGE = "gauge"
"""A figure of the last interval closed."""

PROMETHEUS_UNITS = {"kW.h": "kwh", "kg": "kg", "W": "watts", "s": "seconds", "g/kW.h": "g_per_kwh"}
"""Each series' UCUM unit (OpenTelemetry's) as the suffix of its Prometheus name: base units
(seconds, watts) spelled out as Prometheus' naming conventions ask, the schema's kWh and kg
kept as the schema names them."""


@dataclass(frozen=True)
class Series:
    """One monitoring series: its OpenTelemetry name (dotted), kind, UCUM unit and help, and
    the schema keys it is read from, each with its `component` attribute (or None)."""

    name: str
    kind: str
    unit: str
    help: str
    keys: tuple[tuple[str, str | None], ...]

    @property
    def prometheus_unit(self) -> str:
        return PROMETHEUS_UNITS[self.unit]

    @property
    def prometheus_name(self) -> str:
        """`carbonlog.energy` in kW.h -> `carbonlog_energy_kwh` (a counter is exposed with
        `_total` after it: `carbonlog_energy_kwh_total`)."""
        return f"{self.name.replace('.', '_')}_{self.prometheus_unit}"

    def points(self, values: Mapping[str, float]) -> list[tuple[str | None, float]]:
        """(component, value) of each of this series' keys that `values` holds."""
        return [(component, values[key]) for key, component in self.keys if key in values]


def _one(key: str) -> tuple[tuple[str, None]]:
    return ((key, None),)


SERIES = (
    Series(
        "carbonlog.energy",
        COUNTER,
        "kW.h",
        "Facility energy of the run so far (device energy x PUE), summed over its processes",
        _one("energy_kwh_total"),
    ),
    Series("carbonlog.co2", COUNTER, "kg", "CO2e emitted by the run so far", _one("co2_kg_total")),
    Series(
        "carbonlog.interval.energy",
        GAUGE,
        "kW.h",
        "Facility energy of the last interval",
        _one("energy_kwh"),
    ),
    Series("carbonlog.interval.co2", GAUGE, "kg", "CO2e of the last interval", _one("co2_kg")),
    Series(
        "carbonlog.interval.device_energy",
        GAUGE,
        "kW.h",
        "Energy measured at the devices in the last interval, by component (before PUE)",
        (("gpu_kwh", "gpu"), ("cpu_kwh", "cpu"), ("ram_kwh", "ram")),
    ),
    Series(
        "carbonlog.interval.duration", GAUGE, "s", "Length of the last interval", _one("duration_s")
    ),
    Series(
        "carbonlog.power", GAUGE, "W", "Mean device power over the last interval", _one("power_w")
    ),
    Series(
        "carbonlog.intensity",
        GAUGE,
        "g/kW.h",
        "Carbon intensity used for the last interval",
        _one("intensity_g_per_kwh"),
    ),
    Series(
        "carbonlog.forecast.energy",
        GAUGE,
        "kW.h",
        "Facility energy the run will use at its planned length",
        _one("forecast_energy_kwh"),
    ),
    Series(
        "carbonlog.forecast.co2",
        GAUGE,
        "kg",
        "CO2e the run will emit at its planned length",
        _one("forecast_co2_kg"),
    ),
)


def values_of(interval: Interval) -> dict[str, float]:
    """The interval's figures under the schema's bare names (the full set; the forecast only
    when known), built once per mark for every exporter."""
    return metrics.to_dict(interval, prefix="", keys="full")


LABELS = ("run_id", "run_name", "task", "model", "slurm_job_id")


def run_labels(
    run_id: int | None,
    run_name: str | None,
    run_info: Mapping[str, object],
    launch: Mapping[str, object],
) -> dict[str, str]:
    """The run's labels, those known of LABELS: its ledger id and name, task and model, and the
    SLURM job it ran in, so a dashboard joins a series with the ledger and the scheduler."""
    known = {
        "run_id": run_id,
        "run_name": run_name,
        "task": run_info.get("task"),
        "model": run_info.get("model") or run_info.get("base_model"),
        "slurm_job_id": launch.get("slurm_job_id"),
    }
    return {name: str(value) for name, value in known.items() if value not in (None, "")}
