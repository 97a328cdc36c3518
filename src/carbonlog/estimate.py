"""The ML CO2 Impact calculator (Lacoste et al. 2019): hardware x count x hours x region.

Nothing is measured: energy is TDP x count x hours x PUE, CO2 is energy x the region's
intensity, from carbonlog's tables (life-cycle intensities, corrected hardware) by default.
`dataset="mlco2"` is the calculator itself: its regions, intensities, offsets and TDPs
(mlco2_regions.csv, mlco2_hardware.csv) and its formula, TDP x hours / 1000 x impact / 1000
with no PUE, and its cleanest-region pick; `rounded=True` adds its displayed rounding (impact
truncated to whole g/kWh, then every figure to two decimals, as js/grayscale.js setDetails
does), so a statement made with the calculator comes out exactly. The statement's wording is
carbonlog.report.statement's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from carbonlog import water
from carbonlog.embodied import LIFETIME_H, UTILISATION, amortised
from carbonlog.errors import ConfigurationError
from carbonlog.hardware import Hardware, lookup
from carbonlog.intensity import (
    ENV_INTENSITY,
    ENV_LOCATION,
    Grid,
    check_g_per_kwh,
    cleanest_region,
    resolve_site,
)
from carbonlog.intensity.tables import DATASETS
from carbonlog.units import G_PER_KG, co2_kg, kwh_from_w_h

PRECISIONS = ("fp16", "fp32")
"""Peak FLOPS a comparison uses: FP16/BF16 on matrix units (tensor cores), or plain FP32."""
NO_PUE = "none: the calculator's formula has no PUE"


@dataclass(frozen=True)
class HardwareComparison:
    """The same work (the same FLOPs at peak) on other hardware, at the same site."""

    hardware: Hardware
    precision: str  # "fp16" or "fp32": the peak FLOPS the comparison used (PRECISIONS)
    device_hours: float  # hours x count it would take
    energy_kwh: float
    co2_kg: float
    factor: float  # co2_kg / the estimate's co2_kg (below 1: this hardware emits less)


@dataclass(frozen=True)
class Estimate:
    """What `estimate()` found: facility energy, CO2, offset share, and alternatives."""

    hardware: Hardware
    tdp_w: float
    count: int
    hours: float
    grid: Grid
    pue: float
    pue_source: str
    energy_kwh: float  # facility energy: device energy x PUE
    co2_kg: float
    offset_ratio: float
    offset_kg: float
    cleanest: Grid | None  # the provider's region that would emit least, for cloud regions
    cleanest_co2_kg: float | None
    cleanest_factor: float | None  # co2_kg / cleanest_co2_kg (inf when that region emits 0)
    comparisons: tuple[HardwareComparison, ...] = ()
    dataset: str = "carbonlog"  # or "mlco2": the calculator's tables and formula
    rounded: bool = False  # figures rounded as the calculator displays them
    embodied_kg: float | None = None  # the run's share of manufacturing, next to co2_kg
    embodied_source: str | None = None
    water_l: float | None = None  # on site (WUE x IT energy) and at the power plants
    water_source: str | None = None

    @property
    def device_hours(self) -> float:
        """Hours x count: the device-hours of computation."""
        return self.hours * self.count

    def to_dict(self) -> dict:
        """Plain figures for reports and the CLI."""
        return {
            "hardware": self.hardware.name,
            "tdp_w": self.tdp_w,
            "count": self.count,
            "hours": self.hours,
            "location": self.grid.code,
            "location_name": self.grid.name,
            "intensity_g_per_kwh": self.grid.g_per_kwh,
            "intensity_source": self.grid.source,
            "intensity_year": self.grid.year,
            "intensity_convention": self.grid.convention,
            "dataset": self.dataset,
            "rounded": self.rounded,
            "pue": self.pue,
            "pue_source": self.pue_source,
            "energy_kwh": self.energy_kwh,
            "co2_kg": self.co2_kg,
            "offset_ratio": self.offset_ratio,
            "offset_kg": self.offset_kg,
            "cleanest_location": self.cleanest.code if self.cleanest else None,
            "cleanest_co2_kg": self.cleanest_co2_kg,
            "cleanest_factor": self.cleanest_factor,
            "embodied_kg": self.embodied_kg,
            "embodied_source": self.embodied_source,
            "water_l": self.water_l,
            "water_source": self.water_source,
            "comparisons": [
                {
                    "hardware": c.hardware.name,
                    "precision": c.precision,
                    "device_hours": c.device_hours,
                    "energy_kwh": c.energy_kwh,
                    "co2_kg": c.co2_kg,
                    "factor": c.factor,
                }
                for c in self.comparisons
            ],
        }

    def statement(self, format: str = "markdown") -> str:
        """The paper-style emissions statement of the ML CO2 Impact calculator."""
        from carbonlog.report.statement import estimate_statement

        return estimate_statement(self, format)


def estimate(
    hardware: str,
    count: int = 1,
    hours: float = 1.0,
    location: str | None = None,
    pue: float | None = None,
    compare_hardware: str | Sequence[str] | None = None,
    *,
    intensity: float | None = None,
    tdp_w: float | None = None,
    dataset: str = "carbonlog",
    rounded: bool = False,
    precision: str | None = None,
    lifetime_h: float = LIFETIME_H,
    utilisation: float = UTILISATION,
    wue_l_per_kwh: float | None = None,
) -> Estimate:
    """Estimate energy and CO2 of `count` x `hardware` running `hours` at `location`.

    Location, PUE and intensity follow the Tracker's rules (argument, environment, world
    average). `tdp_w` overrides the table's TDP (needed for rows without one, e.g. TPU
    v5). `compare_hardware` names other hardware to price the same work on, at `precision`
    ("fp16": tensor FP16/BF16, "fp32"; by default fp16 where both rows publish it, else fp32).
    `dataset="mlco2"` is the calculator's own data and formula, `rounded` its displayed figures.
    `embodied_kg` amortises the hardware's manufacturing over `lifetime_h` x `utilisation`
    (carbonlog.embodied); `water_l` counts on-site water (`wue_l_per_kwh`, else the provider's
    published WUE) and the power plants' (carbonlog.water); None where no figure exists, and
    always None with dataset="mlco2".
    """
    if dataset not in DATASETS:
        raise ConfigurationError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigurationError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if dataset == "mlco2":
        return _calculator(
            hardware, count, hours, location, pue, compare_hardware, intensity, tdp_w, rounded
        )
    if rounded:
        raise ConfigurationError("rounded=True is the calculator's display: use dataset='mlco2'")
    row = lookup(hardware)
    watts = _tdp(row, tdp_w)
    _check_run(count, hours)
    site = resolve_site(location=location, intensity=intensity, pue=pue)
    grid = site.grid
    device_kwh = kwh_from_w_h(watts * count, hours)
    energy_kwh = device_kwh * site.pue
    kg = _finite_kg(co2_kg(energy_kwh, grid.g_per_kwh), count, hardware, hours)
    cleanest, cleanest_kg = cleanest_region(grid, device_kwh, pue)
    names = [compare_hardware] if isinstance(compare_hardware, str) else compare_hardware or []
    made = amortised(row.name, count * hours, lifetime_h=lifetime_h, utilisation=utilisation)
    drunk = water.footprint(device_kwh, energy_kwh, grid, wue_l_per_kwh=wue_l_per_kwh)
    return Estimate(
        hardware=row,
        tdp_w=watts,
        count=count,
        hours=float(hours),
        grid=grid,
        pue=site.pue,
        pue_source=site.pue_source,
        energy_kwh=energy_kwh,
        co2_kg=kg,
        offset_ratio=grid.offset_ratio,
        offset_kg=kg * grid.offset_ratio,
        cleanest=cleanest,
        cleanest_co2_kg=cleanest_kg,
        cleanest_factor=_times(kg, cleanest_kg),
        comparisons=tuple(
            _same_work_on(lookup(n), row, count * hours, site.pue, grid.g_per_kwh, kg, precision)
            for n in names
        ),
        embodied_kg=made.kg if made else None,
        embodied_source=made.source if made else None,
        water_l=drunk.water_l,
        water_source=drunk.source if drunk.water_l is not None else None,
    )


def _calculator(
    hardware: str,
    count: int,
    hours: float,
    location: str | None,
    pue: float | None,
    compare_hardware: str | Sequence[str] | None,
    intensity: float | None,
    tdp_w: float | None,
    rounded: bool,
) -> Estimate:
    """The ML CO2 Impact calculator on its own data: W x h / 1000 kWh x impact / 1000 kg."""
    from carbonlog.intensity.regions import calculator_cleanest

    if pue is not None and pue != 1:
        raise ConfigurationError("the calculator's formula has no PUE: leave pue unset")
    if compare_hardware:
        raise ConfigurationError("the calculator compares no hardware: use dataset='carbonlog'")
    row = lookup(hardware, "mlco2")
    watts = _tdp(row, tdp_w)
    _check_run(count, hours)
    grid = _calculator_grid(location, intensity)
    custom = grid.kind == "user"  # the calculator's "private infrastructure": kg/kWh as typed
    energy_kwh = kwh_from_w_h(watts * count, hours)
    cleanest = None if custom else calculator_cleanest(grid)
    if rounded:
        energy_kwh = _round2(energy_kwh)
        kg_per_kwh = grid.g_per_kwh / G_PER_KG if custom else _round2(int(grid.g_per_kwh) / 1000)
        grid = replace(grid, g_per_kwh=kg_per_kwh * G_PER_KG)
        kg = _round2(energy_kwh * kg_per_kwh)
        offset_kg = _round2(kg * (grid.offset_ratio * 100) / 100)
        cleanest_kg = _round2(energy_kwh * int(cleanest.g_per_kwh) / 1000) if cleanest else None
    else:
        kg = co2_kg(energy_kwh, grid.g_per_kwh)
        offset_kg = kg * grid.offset_ratio
        cleanest_kg = co2_kg(energy_kwh, cleanest.g_per_kwh) if cleanest else None
    kg = _finite_kg(kg, count, hardware, hours)
    return Estimate(
        hardware=row,
        tdp_w=watts,
        count=count,
        hours=float(hours),
        grid=grid,
        pue=1.0,
        pue_source=NO_PUE,
        energy_kwh=energy_kwh,
        co2_kg=kg,
        offset_ratio=grid.offset_ratio,
        offset_kg=offset_kg,
        cleanest=cleanest,
        cleanest_co2_kg=cleanest_kg,
        cleanest_factor=_times(kg, cleanest_kg),
        dataset="mlco2",
        rounded=rounded,
    )


def _calculator_grid(location: str | None, intensity: float | None) -> Grid:
    """The calculator's region (argument, then CARBONLOG_LOCATION), its figure replaced by
    `intensity` (argument, then CARBONLOG_INTENSITY) when given; `intensity` alone is the
    calculator's private infrastructure."""
    location = location if location is not None else os.environ.get(ENV_LOCATION) or None
    if intensity is None and os.environ.get(ENV_INTENSITY):
        intensity = os.environ[ENV_INTENSITY]
    g_per_kwh = None if intensity is None else check_g_per_kwh(intensity)
    if location is None:
        if g_per_kwh is None:
            raise ConfigurationError(
                "dataset='mlco2' needs one of the calculator's cloud regions "
                "(location='gcp:us-central1') or intensity= for a private infrastructure"
            )
        return Grid(
            code="USER",
            name="a private infrastructure",
            g_per_kwh=g_per_kwh,
            source="user",
            year=None,
            kind="user",
            pue_source=NO_PUE,
        )
    from carbonlog.intensity.locations import resolve_calculator

    grid = resolve_calculator(location)
    if g_per_kwh is not None:
        grid = replace(grid, g_per_kwh=g_per_kwh, source="user", year=None, convention=None)
    return grid


def _round2(value: float) -> float:
    """`value` to two decimals as JavaScript's toFixed(2) does: half away from zero, on the
    exact binary value (Python's round() takes exact halves to even)."""
    from decimal import ROUND_HALF_UP, Decimal  # lazily: only the calculator's display needs it

    return float(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _check_run(count: int, hours: float) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigurationError(f"count must be a whole number >= 1, got {count!r}")
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ConfigurationError(f"hours must be a finite number > 0, got {hours!r}")


def _finite_kg(kg: float, count: int, hardware: str, hours: float) -> float:
    if not math.isfinite(kg):
        raise ConfigurationError(
            f"{count} x {hardware} for {hours:g} h is past any real run: the figures overflow"
        )
    return kg


def _times(kg: float, cleanest_kg: float | None) -> float | None:
    """How many times the cleanest region's CO2 `kg` is (inf when that region emits 0)."""
    if cleanest_kg is None:
        return None
    return kg / cleanest_kg if cleanest_kg > 0 else math.inf


def _tdp(row: Hardware, tdp_w: float | None) -> float:
    if tdp_w is not None:
        if not (isinstance(tdp_w, (int, float)) and math.isfinite(tdp_w) and tdp_w > 0):
            raise ConfigurationError(f"tdp_w must be a finite number > 0, got {tdp_w!r}")
        return float(tdp_w)
    if row.tdp_w is None:
        raise ConfigurationError(
            f"{row.name} has no published power figure ({row.source}); "
            "pass tdp_w= with the watts per device you assume"
        )
    return row.tdp_w


def _same_work_on(
    other: Hardware,
    row: Hardware,
    device_hours: float,
    pue: float,
    g_per_kwh: float,
    kg: float,
    precision: str | None,
) -> HardwareComparison:
    """The same FLOPs on `other` at `precision` (by default fp16 where both rows publish it,
    else fp32): device-hours scale by the peak-FLOPS ratio."""
    asked = [precision] if precision else list(PRECISIONS)
    precision = next((p for p in asked if row.tflops(p) and other.tflops(p)), None)
    if precision is None:
        raise ConfigurationError(
            f"cannot compare {row.name} with {other.name}: the table has no peak "
            f"FLOPS figure at {' or '.join(asked)} for both"
        )
    if other.tdp_w is None:
        raise ConfigurationError(
            f"cannot compare with {other.name}: it has no published power figure"
        )
    hours = device_hours * row.tflops(precision) / other.tflops(precision)
    energy_kwh = kwh_from_w_h(other.tdp_w, hours) * pue
    other_kg = co2_kg(energy_kwh, g_per_kwh)
    factor = other_kg / kg if kg > 0 else math.nan
    return HardwareComparison(other, precision, hours, energy_kwh, other_kg, factor)
