"""Planning a run: the greenest start at a location and, where asked, in the same provider's
other cloud regions, from whatever gives each one's forecast (a file, a live source asked
once per grid zone).

Regions are ranked by their window's mean intensity times the region's PUE (what a kWh at
the chips emits there), as `carbonlog regions --sort` ranks their yearly figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from carbonlog.errors import CarbonlogError
from carbonlog.intensity.forecast import Forecast, ForecastError, Window, best_window
from carbonlog.intensity.forecast_shapes import pick, read_forecasts
from carbonlog.intensity.tables import Grid, tables

ForecastFor = Callable[[Grid | None], Forecast | None]
"""A grid row -> its forecast, None where the source has none; may raise a CarbonlogError.
None stands for a location the tables lack, that a live source knows by its zone."""


@dataclass(frozen=True)
class RegionWindow:
    """One region's greenest window, or why it has none (`problem`)."""

    grid: Grid
    window: Window | None
    problem: str | None = None

    @property
    def effective_g_per_kwh(self) -> float | None:
        """The window's mean intensity times the region's PUE (1 where none is published)."""
        if self.window is None:
            return None
        return self.window.mean_g_per_kwh * (self.grid.pue or 1.0)

    def to_dict(self) -> dict:
        return {
            "location": self.grid.code,
            "name": self.grid.name,
            "pue": self.grid.pue,
            "effective_g_per_kwh": self.effective_g_per_kwh,
            "window": self.window.to_dict() if self.window else None,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Plan:
    """The greenest start at `grid` (None for a forecast of a place the tables lack), and
    with regions asked, every region of its provider that has a forecast, greenest first."""

    grid: Grid | None
    window: Window
    regions: tuple[RegionWindow, ...] = ()

    def to_dict(self) -> dict:
        window = self.window.to_dict()
        return {
            **window,
            "location": self.grid.code if self.grid else window["location"],
            "forecast_location": window["location"],
            "regions": [r.to_dict() for r in self.regions],
        }


def names_of(grid: Grid) -> list[str]:
    """What a forecast may call a location: its code, a cloud region's own name
    ("westeurope" for azure:westeurope, as the Carbon Aware SDK does) and its grid's code."""
    names = [grid.code, grid.location or ""]
    if grid.kind == "cloud":
        names.append(grid.code.split(":", 1)[1])
    return [n for n in names if n]


def from_forecasts(forecasts: Sequence[Forecast]) -> ForecastFor:
    """A ForecastFor over forecasts read from a file: each grid's by its names."""
    return lambda grid: pick(forecasts, names_of(grid))


def from_file(path: str | os.PathLike, grid: Grid | None) -> tuple[ForecastFor, Forecast | None]:
    """(ForecastFor over the file's forecasts, the forecast to plan): None when `grid` picks
    it, else the file's only forecast; a ForecastError naming what the file holds otherwise."""
    forecasts = read_forecasts(path, location=grid.code if grid else None)
    forecast_for = from_forecasts(forecasts)
    held = ", ".join(sorted({f.location or "?" for f in forecasts}))
    if grid is not None and forecast_for(grid) is None:
        raise ForecastError(f"{path} has no forecast for {grid.code} (it has: {held})")
    if grid is None and len(forecasts) != 1:
        raise ForecastError(f"{path} holds forecasts of {held}: pick one by its location")
    return forecast_for, None if grid is not None else forecasts[0]


def from_source(
    name: str, grid: Grid | None, zone: str | None, now: datetime | None, regions: bool
) -> ForecastFor:
    """A ForecastFor asking the live source `name` (forecast_live.SOURCES) from `now`, once
    per zone: `zone` for the location (when given), each region's grid code otherwise; all
    of a comparison of regions within REGIONS_TIMEOUT_S. What the source cannot answer is a
    ForecastError before anything is asked."""
    from carbonlog.intensity import forecast_live

    if name == "watttime" and not zone:
        raise ForecastError("WattTime names its regions itself: give its zone (CAISO_NORTH ...)")
    if grid is None and not zone:
        raise ForecastError("a live forecast needs a location, or the source's zone")
    if regions and name != "electricitymaps":
        raise ForecastError(
            f"comparing regions needs a forecast of each grid: {name} has none by grid code "
            "(use a forecast file or electricitymaps)"
        )
    source = forecast_live.SOURCES[name]()
    asked: dict[str, Forecast | CarbonlogError] = {}
    until_s = time.monotonic() + forecast_live.REGIONS_TIMEOUT_S

    def forecast_for(other: Grid | None) -> Forecast:
        key = zone if zone and not asked else other.location or other.code
        if key not in asked:
            try:
                asked[key] = source.forecast(key, now, until_s)
            except CarbonlogError as exc:  # said for each region of the zone, asked once
                asked[key] = exc
        found = asked[key]
        if isinstance(found, CarbonlogError):
            raise found
        return found

    return forecast_for


def plan(
    grid: Grid | None,
    forecast_for: ForecastFor,
    hours: float,
    *,
    regions: bool = False,
    now: datetime | None = None,
    finish_by: datetime | None = None,
    forecast: Forecast | None = None,
) -> Plan:
    """The greenest start at `grid` (its forecast from `forecast_for`, or `forecast` when
    given) and, with `regions`, at each of its provider's regions; a region whose forecast
    fails or does not fit is listed with the reason, the others still ranked."""
    if forecast is None:
        forecast = forecast_for(grid)
    if forecast is None:
        raise ForecastError(f"no forecast for {grid.code if grid else 'the location'}")
    window = best_window(forecast, hours, now=now, finish_by=finish_by)
    if not regions:
        return Plan(grid, window)
    if grid is None or grid.provider is None:
        raise ForecastError(
            "comparing regions needs a cloud location, such as azure:westeurope or gcp:us-east1"
        )
    found = []
    for other in sorted(tables().clouds.values(), key=lambda g: g.code):
        if other.provider != grid.provider:
            continue
        try:
            other_forecast = forecast if other.code == grid.code else forecast_for(other)
            if other_forecast is None:
                continue
            found.append(RegionWindow(other, best_window(other_forecast, hours, now, finish_by)))
        except CarbonlogError as exc:
            found.append(RegionWindow(other, None, str(exc)))
    ranked = sorted(found, key=lambda r: (r.window is None, r.effective_g_per_kwh or 0.0))
    return Plan(grid, window, tuple(ranked))
