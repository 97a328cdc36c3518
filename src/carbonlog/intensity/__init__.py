"""Location -> g CO2e/kWh: offline tables, PUE, and an optional live source.

Configuration order (DESIGN.md): argument, then environment (CARBONLOG_LOCATION,
CARBONLOG_PUE, CARBONLOG_INTENSITY), then the world average with one warning.
Importing this package reads no table and opens no socket; both happen on first use,
and a socket only when a live source is asked for.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

from carbonlog._log import logger, warn_once
from carbonlog.errors import ConfigurationError
from carbonlog.intensity.feed import MAX_AGE_S, PLAUSIBLE_G_PER_KWH, LiveFeed
from carbonlog.intensity.regions import cleanest_region
from carbonlog.intensity.tables import Grid, coverage

__all__ = ["Grid", "Site", "cleanest_region", "coverage", "intensity", "resolve_site"]

ENV_LOCATION = "CARBONLOG_LOCATION"
ENV_PUE = "CARBONLOG_PUE"
ENV_INTENSITY = "CARBONLOG_INTENSITY"
PLAUSIBLE_PUE = (1.0, 5.0)
"""PUE accepted: a facility uses at least its IT load, and 5 is past any reported figure."""


def intensity(location: str) -> Grid:
    """The grid row for `location`: g CO2e/kWh with source, year and resolved name."""
    return _grid(location)


def _grid(location: str, origin: str | None = None) -> Grid:
    """The grid row for `location`; an unknown one is a ConfigurationError that names the
    environment variable it came from, if any."""
    from carbonlog.intensity.locations import resolve

    try:
        return resolve(location)
    except ValueError as exc:
        prefix = f"{origin}: " if origin not in (None, "argument") else ""
        raise ConfigurationError(f"{prefix}{exc}") from None


def _finite_number(value: float | str, what: str) -> float:
    """`value` as a finite float; a ConfigurationError naming `what` otherwise. A bool is
    refused: `pue=True` is a mistake, not a PUE of 1."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigurationError(f"{what} must be finite, got {value!r}")
    return number


def check_pue(value: float | str, what: str = "pue") -> float:
    """A valid PUE: within PLAUSIBLE_PUE (a data centre cannot use less than its IT load)."""
    pue = _finite_number(value, what)
    low, high = PLAUSIBLE_PUE
    if pue < low:
        raise ConfigurationError(
            f"{what} must be >= {low:g} (facility energy / IT energy), got {value!r}"
        )
    if pue > high:
        raise ConfigurationError(
            f"{what} must be at most {high:g} (the least efficient data centres report about 3), "
            f"got {value!r}"
        )
    return pue


def check_g_per_kwh(value: float | str, what: str = "intensity") -> float:
    """A valid carbon intensity in g CO2e/kWh: within PLAUSIBLE_G_PER_KWH."""
    g_per_kwh = _finite_number(value, what)
    low, high = PLAUSIBLE_G_PER_KWH
    if not low <= g_per_kwh <= high:
        raise ConfigurationError(
            f"{what} must be from {low:g} to {high:g} g CO2e/kWh (the dirtiest grids are about "
            f"1,300), got {value!r}"
        )
    return g_per_kwh


@dataclass
class Site:
    """Where a run draws its power: the grid row, the PUE, and how intensity is obtained.

    `current_g_per_kwh()` is called once per interval and never waits: the table figure, or
    with a live source the last good live figure in memory (asked in the background, see
    carbonlog.intensity.feed, from the first call on: the tracker makes it at start, on the
    rank that owns the site); the table until the first answer lands or once the last is too
    old. A live failure is said once until the source recovers. Nothing is asked before.
    """

    grid: Grid
    pue: float
    pue_source: str = "default"
    live: object | None = None  # anything with latest(zone) -> (g/kWh, source)
    zone: str | None = None
    _live_failing: bool = field(default=False, init=False, repr=False)
    _feed: LiveFeed | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.pue = check_pue(self.pue)
        check_g_per_kwh(self.grid.g_per_kwh, f"carbon intensity of {self.grid.code}")
        if self.live is not None:
            self._feed = LiveFeed(self.live, self.zone)

    def current_g_per_kwh(self) -> tuple[float, str]:
        """(g CO2e/kWh, source) for the interval being closed, from memory only."""
        if self._feed is None:
            return self.grid.g_per_kwh, self.grid.source
        answer, failure = self._feed.read()
        if failure is None:
            self._live_failing = False
        elif not self._live_failing:
            logger.warning(
                "carbonlog: live carbon intensity unavailable (%s); using the last live figure "
                "while it is under %.0f h old, else the table figure for %s (%.0f g/kWh), until "
                "it answers again",
                failure,
                MAX_AGE_S / 3600,
                self.grid.code,
                self.grid.g_per_kwh,
            )
            self._live_failing = True
        if answer is not None:
            return answer
        waiting = "live unavailable" if failure is not None else "live not answered yet"
        return self.grid.g_per_kwh, f"{self.grid.source} ({waiting})"

    def describe(self) -> dict:
        """Plain facts for the ledger and reports (never a token)."""
        live = None
        if self.live is not None:
            describe = getattr(self.live, "describe", None)
            live = describe(self.zone) if callable(describe) else type(self.live).__name__
        return {
            "location": self.grid.code,
            "name": self.grid.name,
            "kind": self.grid.kind,
            "g_per_kwh": self.grid.g_per_kwh,
            "source": self.grid.source,
            "year": self.grid.year,
            "provider": self.grid.provider,
            "offset_ratio": self.grid.offset_ratio,
            "pue": self.pue,
            "pue_source": self.pue_source,
            "live": live,
        }


def _from_env(value, name: str):
    """(value, origin): the argument when given, else environment variable `name`'s text."""
    if value is not None:
        return value, "argument"
    text = os.environ.get(name, "").strip()
    return (text, name) if text else (None, None)


def resolve_site(
    location: str | None = None,
    intensity: float | str | None = None,
    pue: float | str | None = None,
    live=None,
) -> Site:
    """Resolve where a run draws its power; bad configuration is a ConfigurationError here.

    An explicit `intensity` (g CO2e/kWh) wins over the location's table figure and is
    recorded with source "user". Cloud regions take the provider's published PUE unless
    `pue` is set; elsewhere PUE is 1.0. `live` is an ElectricityMaps instance (or any
    object with `latest(zone)`) or the string "electricitymaps"; it is asked about the
    location's grid code (a cloud region's: the grid it sits in). Electricity Maps names
    US grids by balancing authority ("US-MIDA-PJM"), so for US states build the client
    with zone= or lat=/lon=; a zone it does not know falls back to the table.
    """
    location, location_from = _from_env(location, ENV_LOCATION)
    intensity, intensity_from = _from_env(intensity, ENV_INTENSITY)
    pue, pue_from = _from_env(pue, ENV_PUE)
    user_g_per_kwh = None
    if intensity is not None:
        user_g_per_kwh = check_g_per_kwh(intensity, _what("intensity", intensity_from))
    user_pue = check_pue(pue, _what("pue", pue_from)) if pue is not None else None

    if location is not None:
        grid = _grid(location, location_from)
    elif user_g_per_kwh is not None:
        grid = Grid(
            code="USER",
            name="user-supplied intensity",
            g_per_kwh=user_g_per_kwh,
            source="user",
            year=None,
            kind="user",
        )
    else:
        grid = _grid("WORLD")
        warn_once(
            "intensity:world",
            f"carbonlog: no location set; using the world average {grid.g_per_kwh:g} g CO2e/kWh "
            f"({grid.source}, {grid.year}). Set location='FR' (or 'US-CA', 'gcp:us-central1') "
            f"or the {ENV_LOCATION} environment variable for a figure that fits your grid.",
        )
    if user_g_per_kwh is not None and grid.source != "user":
        grid = replace(grid, g_per_kwh=user_g_per_kwh, source="user", year=None)

    if user_pue is not None:
        site_pue, pue_source = user_pue, "user"
    elif grid.pue is not None:
        site_pue, pue_source = grid.pue, grid.pue_source or f"{grid.provider} published PUE"
    else:
        site_pue, pue_source = 1.0, "default"

    zone = grid.location if grid.kind in ("cloud", "country", "subdivision") else None
    if live is not None:
        if user_g_per_kwh is not None:
            raise ConfigurationError("pass either intensity= or live=, not both")
        live = _live_source(live)
        if (
            zone is None
            and getattr(live, "zone", None) is None
            and getattr(live, "lat", None) is None
        ):
            raise ConfigurationError(
                "a live source needs a location (or a client built with zone= "
                "or lat=/lon=) to know which grid to ask about"
            )
    return Site(grid=grid, pue=site_pue, pue_source=pue_source, live=live, zone=zone)


def _what(name: str, origin: str | None) -> str:
    """The option's name for a message, with the environment variable it came from."""
    return name if origin in (None, "argument") else f"{name} (from {origin})"


def _live_source(live):
    """The live source object `live` names or is; a ConfigurationError for anything else."""
    if isinstance(live, str):
        if live.strip().lower() != "electricitymaps":
            raise ConfigurationError(
                f"unknown live source {live!r}; the one built in is 'electricitymaps'"
            )
        from carbonlog.intensity.live import ElectricityMaps

        return ElectricityMaps()
    if not callable(getattr(live, "latest", None)):
        raise ConfigurationError("live= must be 'electricitymaps' or an object with latest(zone)")
    return live
