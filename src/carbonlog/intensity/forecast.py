"""When to train: a carbon-intensity forecast as time steps, and the start time whose run has
the least mean intensity (`best_window`), exact for steps of any length.

The forecasts come from files and live sources (carbonlog.intensity.forecast_shapes reads
their shapes; carbonlog.intensity.forecast_live asks the sources). Every time is aware: a
timestamp without its zone is refused, since its hour would be a guess.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from carbonlog.errors import CarbonlogError


class ForecastError(CarbonlogError, ValueError):
    """A forecast that cannot be read, or cannot answer the question asked of it."""


@dataclass(frozen=True)
class Step:
    """One stretch of a forecast: from `start` to `end` (aware, UTC) at `g_per_kwh`."""

    start: datetime
    end: datetime
    g_per_kwh: float


@dataclass(frozen=True)
class Forecast:
    """A location's forecast: steps in time order, possibly of uneven length, possibly with
    gaps (a window never spans one). `signal` is "average" or "marginal" when the source
    says which, else None."""

    location: str | None
    steps: tuple[Step, ...]
    source: str
    signal: str | None = None

    @property
    def start(self) -> datetime:
        return self.steps[0].start

    @property
    def end(self) -> datetime:
        return self.steps[-1].end


@dataclass(frozen=True)
class Window:
    """The greenest start for a run of `hours` in a forecast, and starting at `now` instead.

    `mean_g_per_kwh` is the time-weighted mean over [start, end]; `now_mean_g_per_kwh` the
    same for a run starting at `now` (the earliest start asked, or the forecast's first step
    when it begins later), None where a gap in the forecast leaves it unknown."""

    location: str | None
    hours: float
    start: datetime
    end: datetime
    mean_g_per_kwh: float
    now: datetime
    now_mean_g_per_kwh: float | None
    horizon_end: datetime
    source: str
    signal: str | None

    @property
    def saving_ratio(self) -> float | None:
        """The share of the intensity (so of the CO2, for the same energy) saved against
        starting now: 0.4 is 40 % less; None when starting now is not covered."""
        if not self.now_mean_g_per_kwh:
            return None
        return 1.0 - self.mean_g_per_kwh / self.now_mean_g_per_kwh

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("start", "end", "now", "horizon_end"):
            out[key] = iso(out[key])
        out["saving_ratio"] = self.saving_ratio
        return out


def iso(when: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC, with Z."""
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: object) -> datetime:
    """An ISO 8601 timestamp with Z or an offset, as an aware UTC datetime; a ForecastError for
    one without a time zone (its hour would be a guess)."""
    if not isinstance(text, str):
        raise ForecastError(f"a timestamp must be ISO 8601 text, got {text!r}")
    stripped = text.strip()
    if stripped[-1:] in ("Z", "z"):
        stripped = stripped[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(stripped)
    except ValueError:
        raise ForecastError(f"not an ISO 8601 timestamp: {text!r}") from None
    if when.utcoffset() is None:
        raise ForecastError(
            f"timestamp without a time zone: {text!r} (add Z for UTC, or an offset like +01:00)"
        )
    return when.astimezone(timezone.utc)


class _Integral:
    """The integral of a forecast's intensity over time, in g/kWh x s from its start."""

    def __init__(self, forecast: Forecast):
        origin = forecast.start
        self.starts = [(s.start - origin).total_seconds() for s in forecast.steps]
        self.ends = [(s.end - origin).total_seconds() for s in forecast.steps]
        self.values = [s.g_per_kwh for s in forecast.steps]
        self.before = [0.0]
        for start, end, value in zip(self.starts, self.ends, self.values, strict=True):
            self.before.append(self.before[-1] + value * (end - start))

    def at(self, t_s: float) -> float:
        i = bisect.bisect_right(self.starts, t_s) - 1
        if i < 0:
            return 0.0
        return self.before[i] + self.values[i] * (min(t_s, self.ends[i]) - self.starts[i])

    def segments(self) -> list[tuple[float, float, list[float]]]:
        """(start, end, every step edge) of each stretch without a gap."""
        found: list[tuple[float, float, list[float]]] = []
        for start, end in zip(self.starts, self.ends, strict=True):
            if found and math.isclose(found[-1][1], start, abs_tol=1e-6):
                found[-1] = (found[-1][0], end, [*found[-1][2], end])
            else:
                found.append((start, end, [start, end]))
        return found


def best_window(
    forecast: Forecast | str | os.PathLike,
    hours: float,
    now: datetime | None = None,
    finish_by: datetime | None = None,
) -> Window:
    """The start, at `now` (default: the current time) or later, whose run of `hours` has the
    least time-weighted mean intensity, finishing within the forecast (and by `finish_by`).

    `forecast` is a Forecast or a file holding one (forecast_shapes.read_forecasts). The mean
    over a run is exact for step forecasts: it changes linearly between the starts where the
    run's start or end meets a step edge, so those are the only starts to compare (the
    earliest of equals wins). A run longer than what the forecast covers is a ForecastError.
    """
    if not isinstance(forecast, Forecast):
        from carbonlog.intensity.forecast_shapes import read_forecasts  # it reads into Forecasts

        found = read_forecasts(forecast)
        if len(found) != 1:
            raise ForecastError(f"{forecast} holds {len(found)} forecasts: pick one by location")
        forecast = found[0]
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours < math.inf:
        raise ForecastError(f"hours must be a number above 0, got {hours!r}")
    now = _aware(now, "now") or datetime.now(timezone.utc)
    latest = min(forecast.end, _aware(finish_by, "finish_by") or forecast.end)
    earliest = max(now, forecast.start)
    run_s = hours * 3600.0
    if forecast.end <= earliest:
        raise ForecastError(
            f"the forecast ends at {iso(forecast.end)}, before the earliest start "
            f"{iso(earliest)}: get a newer one"
        )
    covered_h = (latest - earliest).total_seconds() / 3600.0
    if covered_h < hours - 1e-9:
        until = "the latest end asked" if latest < forecast.end else "the end of the forecast"
        raise ForecastError(
            f"a run of {hours:g} h does not fit: from {iso(earliest)} to {iso(latest)} ({until}) "
            f"is {max(covered_h, 0):.4g} h; shorten the run or get a longer forecast"
        )
    integral = _Integral(forecast)
    lo_s = (earliest - forecast.start).total_seconds()
    hi_s = (latest - forecast.start).total_seconds()
    best: tuple[float, float] | None = None  # (mean, start)
    for seg_start, seg_end, edges in integral.segments():
        first, last = max(seg_start, lo_s), min(seg_end, hi_s) - run_s
        if last < first - 1e-9:
            continue
        starts = {first, max(first, last)}
        starts.update(e for e in edges if first < e < last)
        starts.update(e - run_s for e in edges if first < e - run_s < last)
        for start in sorted(starts):
            mean = (integral.at(start + run_s) - integral.at(start)) / run_s
            if best is None or mean < best[0] - 1e-9:
                best = (mean, start)
    if best is None:
        raise ForecastError(
            f"no stretch of the forecast without a gap holds a run of {hours:g} h "
            f"from {iso(earliest)}"
        )
    now_mean = _mean_if_covered(integral, lo_s, run_s)
    start = forecast.start + timedelta(seconds=best[1])
    return Window(
        location=forecast.location,
        hours=float(hours),
        start=start,
        end=start + timedelta(seconds=run_s),
        mean_g_per_kwh=best[0],
        now=earliest,
        now_mean_g_per_kwh=now_mean,
        horizon_end=forecast.end,
        source=forecast.source,
        signal=forecast.signal,
    )


def _mean_if_covered(integral: _Integral, start_s: float, run_s: float) -> float | None:
    """The mean over [start, start + run] when no gap falls inside it, else None."""
    for seg_start, seg_end, _ in integral.segments():
        if seg_start - 1e-6 <= start_s and start_s + run_s <= seg_end + 1e-6:
            return (integral.at(start_s + run_s) - integral.at(start_s)) / run_s
    return None


def _aware(when: datetime | None, what: str) -> datetime | None:
    """`when` in UTC; a ForecastError for a naive datetime."""
    if when is None:
        return None
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise ForecastError(f"{what} must be a datetime with a time zone, got {when!r}")
    return when.astimezone(timezone.utc)
