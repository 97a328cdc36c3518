"""Water: litres consumed on site (cooling) and at the power plants (generation) for a run.

    water_l = wue_l_per_kwh x it_kwh + grid_l_per_kwh x facility_kwh

WUE is the provider's published water usage effectiveness (L per kWh of IT energy, from
carbonlog/data/wue.csv: a region's own figure, else the provider's fleet average), or the
caller's. grid_l_per_kwh is the water the power plants of the site's country consume per kWh
(carbonlog/data/water.csv: Macknick et al. 2012 per-source factors weighted by the
country's generation mix; a subdivision or a cloud region takes its country's). Either part
is None where no figure is published; `water_l` sums the parts that are known.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache

from carbonlog.errors import ConfigurationError
from carbonlog.intensity import Grid, intensity


@dataclass(frozen=True)
class Factor:
    """A published litres-per-kWh figure, with its source and the year it describes."""

    l_per_kwh: float
    source: str
    year: int | None


@dataclass(frozen=True)
class Water:
    """A run's water in litres, on site and at the power plants, with the figures used.

    `onsite_l` is None where the site has no published WUE, `offsite_l` where its country
    has no generation mix with water factors; `mix` is the grid code whose mix was used.
    """

    onsite_l: float | None
    offsite_l: float | None
    wue: Factor | None
    grid: Factor | None
    mix: str | None

    @property
    def water_l(self) -> float | None:
        """On-site plus off-site litres, of the parts that are known; None when neither is."""
        parts = [p for p in (self.onsite_l, self.offsite_l) if p is not None]
        return sum(parts) if parts else None

    @property
    def complete(self) -> bool:
        """Whether both parts are known."""
        return self.onsite_l is not None and self.offsite_l is not None

    @property
    def source(self) -> str:
        """Where each part's figure comes from, in one line for ledgers and reports."""
        onsite = _cited(self.wue, "no published WUE")
        offsite = _cited(self.grid, "no generation mix")
        if self.grid is not None:
            offsite = f"{self.mix} mix: {offsite}"
        return f"on site: {onsite}; power plants: {offsite}"


def _cited(factor: Factor | None, missing: str) -> str:
    if factor is None:
        return missing
    year = f", {factor.year}" if factor.year else ""
    return f"{factor.l_per_kwh:g} L/kWh ({factor.source}{year})"


def _rows(name: str) -> list[dict[str, str]]:
    from importlib import resources  # lazily: it costs ~9 ms at import

    text = resources.files("carbonlog").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@cache
def _wue_table() -> dict[tuple[str, str], Factor]:
    """(provider, region or "" for the fleet) -> WUE."""
    return {
        (r["provider"], r["region"]): Factor(float(r["wue_l_per_kwh"]), r["source"], int(r["year"]))
        for r in _rows("wue.csv")
    }


@cache
def _grid_table() -> dict[str, Factor]:
    """Country code -> the water its power plants consume per kWh generated."""
    return {
        r["code"]: Factor(float(r["l_per_kwh"]), r["source"], int(r["year"]))
        for r in _rows("water.csv")
    }


def published_wue(grid: Grid) -> Factor | None:
    """The provider's WUE for a cloud region: the region's own, else the fleet's; else None."""
    if grid.kind != "cloud" or grid.provider is None:
        return None
    region = grid.code.split(":", 1)[1]
    table = _wue_table()
    return table.get((grid.provider, region)) or table.get((grid.provider, ""))


def mix_code(grid: Grid) -> str | None:
    """The country whose generation mix a site draws on: a country itself, a subdivision's
    or a cloud region's country; None for the world average or a user-supplied intensity."""
    code = grid.location if grid.kind == "cloud" else grid.code
    if grid.kind not in ("country", "subdivision", "cloud") or not code:
        return None
    return code.split("-", 1)[0]


def footprint(
    it_kwh: float,
    facility_kwh: float,
    location: str | Grid,
    *,
    wue_l_per_kwh: float | None = None,
) -> Water:
    """The water of `it_kwh` at the devices and `facility_kwh` at the facility (IT energy x
    PUE) at `location` (a location string or a resolved Grid). `wue_l_per_kwh` overrides the
    published WUE (0 for a dry-cooled room)."""
    it_kwh = _non_negative(it_kwh, "it_kwh")
    facility_kwh = _non_negative(facility_kwh, "facility_kwh")
    grid = intensity(location) if isinstance(location, str) else location
    if wue_l_per_kwh is not None:
        wue = Factor(_non_negative(wue_l_per_kwh, "wue_l_per_kwh"), "user", None)
    else:
        wue = published_wue(grid)
    mix = mix_code(grid)
    plants = _grid_table().get(mix) if mix else None
    return Water(
        onsite_l=wue.l_per_kwh * it_kwh if wue else None,
        offsite_l=plants.l_per_kwh * facility_kwh if plants else None,
        wue=wue,
        grid=plants,
        mix=mix if plants else None,
    )


def water_l(
    it_kwh: float,
    facility_kwh: float,
    location: str | Grid,
    *,
    wue_l_per_kwh: float | None = None,
) -> float | None:
    """Litres of water for a run (see `footprint`): the known parts summed, None when no
    figure exists for either."""
    return footprint(it_kwh, facility_kwh, location, wue_l_per_kwh=wue_l_per_kwh).water_l


def _non_negative(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number, got {value!r}")
    if value < 0:
        raise ConfigurationError(f"{what} must be >= 0, got {value!r}")
    return float(value)
