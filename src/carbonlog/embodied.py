"""Embodied emissions: the manufacturing CO2e of a device, and a run's amortised share of it.

Rows come from carbonlog/data/embodied.csv (built by scripts/build_footprint_tables.py, each
with its source, year and boundary: "die", "card" or "card+server"). A run's share is

    embodied_kg = device_kg x device_hours / (lifetime_h x utilisation)

published next to, never inside, the operational co2_kg. LIFETIME_H is six years, the
useful life Microsoft (fiscal 2023) and Google (2023) give their servers in their annual
reports; AWS gives a subset of its AI servers five years from 2025. UTILISATION 1.0 counts
every hour of that life as work, the smallest share a run can carry; pass the share of its
life the hardware really computes (e.g. 0.5) for a larger, truer one.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache, lru_cache

from carbonlog.errors import ConfigurationError
from carbonlog.hardware import lookup

HOURS_PER_YEAR = 8760.0
LIFETIME_H = 6 * HOURS_PER_YEAR
UTILISATION = 1.0
BOUNDARIES = ("die", "card", "card+server")  # what a figure covers, narrowest to widest


@dataclass(frozen=True)
class Embodied:
    """One device's manufacturing emissions, kg CO2e, with what the figure covers."""

    hardware: str  # a carbonlog/data/hardware.csv name
    kg: float
    boundary: str  # one of BOUNDARIES
    stages: str  # the life-cycle stages counted, e.g. "cradle-to-gate"
    source: str
    year: int


@cache
def _table() -> dict[str, Embodied]:
    """hardware.csv name -> its row (one per hardware: the build script checks)."""
    from importlib import resources  # lazily: it costs ~9 ms at import

    text = resources.files("carbonlog").joinpath("data", "embodied.csv").read_text("utf-8")
    rows: dict[str, Embodied] = {}
    for r in csv.DictReader(io.StringIO(text)):
        kg, year = float(r["kg_co2e"]), int(r["year"])
        row = Embodied(r["hardware"], kg, r["boundary"], r["stages"], r["source"], year)
        rows[row.hardware] = row
    return rows


@lru_cache(maxsize=256)
def footprint(hardware_name: str) -> Embodied | None:
    """The embodied row of `hardware_name` (any spelling carbonlog.hardware.lookup accepts);
    None when the table has no figure for it or the name is not one row of the hardware
    table. Cached: every tracker's start asks it for each of its devices, and a name that
    is in no row costs the lookup's fuzzy matching (milliseconds)."""
    try:
        name = lookup(hardware_name).name
    except ConfigurationError:
        return None
    return _table().get(name)


def life_share(
    device_hours: float, lifetime_h: float = LIFETIME_H, utilisation: float = UTILISATION
) -> float:
    """The share of a device's working life that `device_hours` of work takes: device_hours /
    (lifetime_h x utilisation). Bad numbers are a ConfigurationError."""
    return _hours(device_hours) / (_lifetime(lifetime_h) * _utilisation(utilisation))


@dataclass(frozen=True)
class Amortised:
    """A run's share of a device's manufacturing emissions, and what it was worked from."""

    kg: float
    device: Embodied
    device_hours: float
    lifetime_h: float
    utilisation: float

    @property
    def source(self) -> str:
        """The row and the amortisation, in one line for ledgers and reports."""
        d = self.device
        return (
            f"{d.kg:g} kg CO2e per {d.hardware} ({d.boundary}, {d.stages}; {d.source}, "
            f"{d.year}) x {self.device_hours:g} device-h / ({self.lifetime_h:g} h lifetime x "
            f"{self.utilisation:g} utilisation)"
        )


def amortised(
    hardware_name: str,
    device_hours: float,
    *,
    lifetime_h: float = LIFETIME_H,
    utilisation: float = UTILISATION,
) -> Amortised | None:
    """`hardware_name`'s manufacturing emissions carried by `device_hours` (hours x device
    count) of work; None where the table has no figure for that hardware."""
    share = life_share(device_hours, lifetime_h, utilisation)
    row = footprint(hardware_name)
    if row is None:
        return None
    return Amortised(row.kg * share, row, float(device_hours), float(lifetime_h), utilisation)


def amortised_kg(
    hardware_name: str,
    device_hours: float,
    *,
    lifetime_h: float = LIFETIME_H,
    utilisation: float = UTILISATION,
) -> float | None:
    """kg CO2e of `hardware_name`'s manufacturing carried by `device_hours` of work (see
    `amortised`); None where the table has no figure for that hardware."""
    found = amortised(hardware_name, device_hours, lifetime_h=lifetime_h, utilisation=utilisation)
    return None if found is None else found.kg


def _number(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _hours(device_hours: float) -> float:
    hours = _number(device_hours, "device_hours")
    if hours < 0:
        raise ConfigurationError(f"device_hours must be >= 0, got {device_hours!r}")
    return hours


def _lifetime(lifetime_h: float) -> float:
    hours = _number(lifetime_h, "lifetime_h")
    if hours <= 0:
        raise ConfigurationError(f"lifetime_h must be > 0 hours, got {lifetime_h!r}")
    return hours


def _utilisation(utilisation: float) -> float:
    share = _number(utilisation, "utilisation")
    if not 0 < share <= 1:
        raise ConfigurationError(
            f"utilisation must be a share of the lifetime in (0, 1], got {utilisation!r}"
        )
    return share
