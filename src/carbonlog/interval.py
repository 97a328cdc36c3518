"""The records a tracker produces: one Interval per mark(), one Summary per run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from carbonlog import units


@dataclass(frozen=True)
class Interval:
    """Energy and CO2 between two marks.

    Component energies (`gpu_j`, `cpu_j`, `ram_j`, joules) are measured at the device and,
    in distributed runs, summed over all processes. Facility energy is their sum x `pue`;
    CO2 is facility energy x `intensity_g_per_kwh`. The `*_total` fields are the run's
    running totals including this interval (and any resumed earlier part of the run).
    `band_j` is each component's uncertainty half-width (J) and `methods` how it was measured
    (counter, sampled, model); `samples` and `tokens` are the work done in the interval where the
    framework counts it; `embodied_kg` and `water_l` are the interval's share of the hardware's
    manufacturing emissions and the water drawn for its energy, where tables have figures.
    """

    label: str
    index: int
    started_at_s: float
    duration_s: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    pue: float
    intensity_g_per_kwh: float
    intensity_source: str
    energy_kwh_total: float
    co2_kg_total: float
    estimated: tuple[str, ...] = ()
    forecast_energy_kwh: float | None = None
    forecast_co2_kg: float | None = None
    band_j: Mapping[str, float] = field(default_factory=dict)
    methods: Mapping[str, str] = field(default_factory=dict)
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None
    water_l: float | None = None

    @property
    def device_j(self) -> float:
        """Energy measured at the devices, before PUE."""
        return self.gpu_j + self.cpu_j + self.ram_j

    @property
    def energy_kwh(self) -> float:
        """Facility energy: device energy x PUE."""
        return units.facility_kwh(self.device_j, self.pue)

    @property
    def co2_kg(self) -> float:
        return units.co2_kg(self.energy_kwh, self.intensity_g_per_kwh)

    @property
    def power_w(self) -> float:
        """Mean device power over the interval."""
        return self.device_j / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class Summary:
    """A whole run: totals, every interval, and what was measured where."""

    run_name: str | None
    status: str
    duration_s: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    energy_kwh: float
    co2_kg: float
    intervals: list[Interval] = field(default_factory=list)
    hardware: dict = field(default_factory=dict)
    site: dict = field(default_factory=dict)
    run_id: int | None = None
    stop_reason: str | None = None

    @property
    def device_j(self) -> float:
        return self.gpu_j + self.cpu_j + self.ram_j
