"""The ML CO2 Impact calculator (Lacoste et al. 2019): hardware x count x hours x region.

Nothing is measured: energy is TDP x count x hours x PUE, CO2 is energy x the region's
intensity. With PUE 1 this is the calculator's formula. The calculator displays its
figures rounded: it truncates the region's intensity to whole g/kWh, rounds it to
0.01 kg/kWh, and rounds kWh and kg to two decimals; carbonlog keeps full precision, so
to reproduce a calculator row pass `intensity=` its rounded kg/kWh x 1000 (e.g. 570 for
566.3 g/kWh) and round the result to two decimals. The statement's wording is
carbonlog.report.statement's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from carbonlog.errors import ConfigurationError
from carbonlog.hardware import Hardware, lookup
from carbonlog.intensity import Grid, cleanest_region, resolve_site
from carbonlog.units import co2_kg, kwh_from_w_h


@dataclass(frozen=True)
class HardwareComparison:
    """The same work (the same FLOPs at peak) on other hardware, at the same site."""

    hardware: Hardware
    precision: str  # "fp16" or "fp32": the peak FLOPS both rows publish
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
            "pue": self.pue,
            "pue_source": self.pue_source,
            "energy_kwh": self.energy_kwh,
            "co2_kg": self.co2_kg,
            "offset_ratio": self.offset_ratio,
            "offset_kg": self.offset_kg,
            "cleanest_location": self.cleanest.code if self.cleanest else None,
            "cleanest_co2_kg": self.cleanest_co2_kg,
            "cleanest_factor": self.cleanest_factor,
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
) -> Estimate:
    """Estimate energy and CO2 of `count` x `hardware` running `hours` at `location`.

    Location, PUE and intensity follow the Tracker's rules (argument, environment, world
    average). `tdp_w` overrides the table's TDP (needed for rows without one, e.g. TPU
    v5). `compare_hardware` names other hardware to price the same work on.
    """
    row = lookup(hardware)
    watts = _tdp(row, tdp_w)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigurationError(f"count must be a whole number >= 1, got {count!r}")
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ConfigurationError(f"hours must be a finite number > 0, got {hours!r}")
    site = resolve_site(location=location, intensity=intensity, pue=pue)
    grid = site.grid
    device_kwh = kwh_from_w_h(watts * count, hours)
    energy_kwh = device_kwh * site.pue
    kg = co2_kg(energy_kwh, grid.g_per_kwh)
    if not math.isfinite(kg):
        raise ConfigurationError(
            f"{count} x {hardware} for {hours:g} h is past any real run: the figures overflow"
        )
    cleanest, cleanest_kg = cleanest_region(grid, device_kwh, pue)
    factor = None
    if cleanest is not None:
        factor = kg / cleanest_kg if cleanest_kg > 0 else math.inf
    names = [compare_hardware] if isinstance(compare_hardware, str) else compare_hardware or []
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
        cleanest_factor=factor,
        comparisons=tuple(
            _same_work_on(lookup(n), row, count * hours, site.pue, grid.g_per_kwh, kg)
            for n in names
        ),
    )


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
    other: Hardware, row: Hardware, device_hours: float, pue: float, g_per_kwh: float, kg: float
) -> HardwareComparison:
    """The same FLOPs on `other`: device-hours scale by the peak-FLOPS ratio."""
    precision = next((p for p in ("fp16", "fp32") if row.tflops(p) and other.tflops(p)), None)
    if precision is None:
        raise ConfigurationError(
            f"cannot compare {row.name} with {other.name}: the table has no peak "
            "FLOPS figure at a precision both publish"
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
