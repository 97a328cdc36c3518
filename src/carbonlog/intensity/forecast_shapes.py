"""The forecast shapes carbonlog reads, from a file or a live source's body (docs/planning.md
cites each): the Green Software Foundation Carbon Aware SDK's forecasts (a list of
`{location, forecastData: [{timestamp, duration (minutes), value (g/kWh)}]}`), the UK Carbon
Intensity API's `{data: [{from, to, intensity: {forecast}}]}`, Electricity Maps'
`{zone, forecast: [{datetime, carbonIntensity}]}`, WattTime v3's
`{data: [{point_time, value}], meta: {data_point_period_seconds, units, signal_type}}`, and a
CSV of `timestamp,g_per_kwh`. Every figure is checked against PLAUSIBLE_G_PER_KWH, as live
figures are (carbonlog.intensity.feed).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from carbonlog.intensity.feed import PLAUSIBLE_G_PER_KWH, plausible
from carbonlog.intensity.forecast import Forecast, ForecastError, Step, iso, parse_time

LB_KG = 0.45359237
"""One avoirdupois pound in kilograms, exact (International Yard and Pound Agreement, 1959):
WattTime's lbs CO2/MWh times this is kg/MWh, which is g/kWh."""
WATTTIME_UNITS = {"lbs_co2_per_mwh": LB_KG}
"""WattTime's units of its CO2 signals, as `meta.units` names them, to g CO2/kWh."""
WATTTIME_SIGNALS = {"co2_moer": "marginal", "co2_aoer": "average"}
"""WattTime's CO2 signals; the others (health damage) are not g CO2/kWh."""
CSV_COLUMNS = ("timestamp", "g_per_kwh")


def _g_per_kwh(value: object, factor: float, at: str) -> float:
    """A step's figure in g/kWh (`value` times `factor`), within PLAUSIBLE_G_PER_KWH."""
    try:
        g_per_kwh = math.nan if isinstance(value, bool) else float(value) * factor
    except (TypeError, ValueError):
        raise ForecastError(f"the step at {at}: {value!r} is not a number") from None
    if not plausible(g_per_kwh):
        low, high = PLAUSIBLE_G_PER_KWH
        raise ForecastError(
            f"the step at {at}: implausible carbon intensity {g_per_kwh:g} g/kWh "
            f"(plausible: {low:g} to {high:g})"
        )
    return g_per_kwh


def _steps(
    points: Iterable[tuple[datetime, datetime | None, float]], last_s: float | None = None
) -> tuple[Step, ...]:
    """Steps from (start, end or None, g/kWh) points: a missing end is the next point's start
    (the last one's: `last_s` seconds, else the step before's length); an end past the next
    start (a rolling average's overlap) is cut there."""
    ordered = sorted(points, key=lambda p: p[0])
    if not ordered:
        raise ForecastError("the forecast has no steps")
    steps: list[Step] = []
    for i, (start, end, g_per_kwh) in enumerate(ordered):
        following = ordered[i + 1][0] if i + 1 < len(ordered) else None
        if following == start:
            raise ForecastError(f"two steps start at {iso(start)}")
        if end is None:
            if following is not None:
                end = following
            elif last_s is not None:
                end = start + timedelta(seconds=last_s)
            elif steps:
                end = start + (steps[-1].end - steps[-1].start)
            else:
                raise ForecastError("a forecast of one point has no length: give its duration")
        elif following is not None:
            end = min(end, following)
        if end <= start:
            raise ForecastError(f"the step at {iso(start)} ends before it starts")
        steps.append(Step(start, end, g_per_kwh))
    return tuple(steps)


def _points(items: object, what: str) -> list[dict]:
    """`items` as a non-empty list of JSON objects, else a ForecastError naming `what`."""
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ForecastError(f"{what} must be a non-empty list of objects")
    return items


def _carbon_aware(entry: dict, source: str) -> Forecast:
    """One Carbon Aware SDK EmissionsForecast: `duration` is in minutes."""
    points = []
    for point in _points(entry.get("forecastData"), "forecastData"):
        try:
            start = parse_time(point["timestamp"])
            minutes = point.get("duration")
            length = None if minutes in (None, 0) else timedelta(minutes=float(minutes))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ForecastError(f"a forecastData point is malformed ({exc!r})") from None
        value = _g_per_kwh(point.get("value"), 1.0, iso(start))
        points.append((start, None if length is None else start + length, value))
    location = entry.get("location") or _point_location(entry)
    return Forecast(location or None, _steps(points), f"{source} (Carbon Aware SDK)")


def _point_location(entry: dict) -> str | None:
    """The location the SDK's points name, when the forecast itself names none."""
    first = entry["forecastData"][0]
    return first.get("location") if isinstance(first.get("location"), str) else None


def _uk(data: list[dict], source: str, location: str | None) -> Forecast:
    """The UK Carbon Intensity API's half-hours: {from, to, intensity: {forecast}}."""
    points = []
    for period in data:
        try:
            start, end = parse_time(period["from"]), parse_time(period["to"])
            value = period["intensity"]["forecast"]
        except (KeyError, TypeError) as exc:
            raise ForecastError(f"a UK Carbon Intensity period is malformed ({exc!r})") from None
        points.append((start, end, _g_per_kwh(value, 1.0, iso(start))))
    name = f"{source} (UK Carbon Intensity API)"
    return Forecast(location or "GB", _steps(points), name, "average")


def _electricity_maps(body: dict, source: str, location: str | None) -> Forecast:
    """Electricity Maps' forecast: hourly points, each the start of its hour."""
    granularity = {"5_minutes": 300.0, "15_minutes": 900.0, "hourly": 3600.0}
    points = []
    for point in _points(body.get("forecast"), "forecast"):
        try:
            start = parse_time(point["datetime"])
        except KeyError:
            raise ForecastError("an Electricity Maps forecast point has no datetime") from None
        points.append((start, None, _g_per_kwh(point.get("carbonIntensity"), 1.0, iso(start))))
    last_s = granularity.get(body.get("temporalGranularity"), 3600.0)
    zone = body.get("zone") if isinstance(body.get("zone"), str) else location
    name = f"{source} (Electricity Maps)"
    return Forecast(zone, _steps(points, last_s), name, "average")


def _watttime(body: dict, source: str, location: str | None) -> Forecast:
    """WattTime v3's forecast: points every `data_point_period_seconds`, in `meta.units`."""
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    units, signal_type = meta.get("units"), meta.get("signal_type", "co2_moer")
    if units not in WATTTIME_UNITS or signal_type not in WATTTIME_SIGNALS:
        raise ForecastError(
            f"WattTime {signal_type!r} in {units!r} is not a CO2 intensity this reads "
            f"(signals: {', '.join(WATTTIME_SIGNALS)}; units: {', '.join(WATTTIME_UNITS)})"
        )
    period_s = meta.get("data_point_period_seconds")
    last_s = float(period_s) if isinstance(period_s, int | float) and period_s > 0 else None
    points = []
    for point in _points(body.get("data"), "data"):
        try:
            start = parse_time(point["point_time"])
        except KeyError:
            raise ForecastError("a WattTime forecast point has no point_time") from None
        value = _g_per_kwh(point.get("value"), WATTTIME_UNITS[units], iso(start))
        points.append((start, None, value))
    region = meta.get("region") if isinstance(meta.get("region"), str) else location
    name = f"{source} (WattTime {signal_type})"
    return Forecast(region, _steps(points, last_s), name, WATTTIME_SIGNALS[signal_type])


def parse_forecasts(data: object, source: str, location: str | None = None) -> list[Forecast]:
    """The forecasts in a decoded JSON body of any shape this module reads; `location` names
    those of a shape that does not say where it is (the UK API's, a WattTime body without
    meta.region)."""
    if isinstance(data, dict) and "forecastData" in data:
        data = [data]
    sdk = isinstance(data, list) and data and all(isinstance(e, dict) for e in data)
    if sdk and all("forecastData" in e for e in data):
        return [_carbon_aware(entry, source) for entry in data]
    if isinstance(data, dict) and "forecast" in data:
        return [_electricity_maps(data, source, location)]
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        items = _points(data["data"], "data")
        if "point_time" in items[0]:
            return [_watttime(data, source, location)]
        return [_uk(items, source, location)]
    raise ForecastError(
        f"{source} is not a forecast shape carbonlog reads: a Carbon Aware SDK forecast list, "
        "a UK Carbon Intensity data[], an Electricity Maps or WattTime forecast, or a CSV of "
        "timestamp,g_per_kwh"
    )


def parse_csv(text: str, source: str, location: str | None = None) -> Forecast:
    """A CSV of `timestamp,g_per_kwh` (a header row, then one row per step start)."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    header = tuple(cell.strip().lower() for cell in rows[0]) if rows else ()
    if header[:2] != CSV_COLUMNS:
        raise ForecastError(f"{source}: a forecast CSV starts with the header timestamp,g_per_kwh")
    points = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise ForecastError(f"{source}, row {number}: expected timestamp,g_per_kwh")
        start = parse_time(row[0])
        points.append((start, None, _g_per_kwh(row[1].strip(), 1.0, iso(start))))
    return Forecast(location, _steps(points), f"{source} (CSV)")


def read_forecasts(path: str | os.PathLike, location: str | None = None) -> list[Forecast]:
    """The forecasts in a file: JSON of a shape `parse_forecasts` reads, or a CSV (by its
    `.csv` suffix, or text that is not JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ForecastError(f"cannot read the forecast {path}: {exc}") from None
    if path.suffix.lower() == ".csv" or text.lstrip()[:1] not in ("[", "{"):
        return [parse_csv(text, str(path), location)]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ForecastError(f"{path} is not valid JSON ({exc})") from None
    return parse_forecasts(data, str(path), location)


def pick(forecasts: Sequence[Forecast], names: Iterable[str]) -> Forecast | None:
    """The forecast for a location known by any of `names` (case-insensitive); the only one
    when a single forecast names no location."""
    wanted = {n.lower() for n in names if n}
    for forecast in forecasts:
        if forecast.location and forecast.location.lower() in wanted:
            return forecast
    if len(forecasts) == 1 and forecasts[0].location is None:
        return forecasts[0]
    return None
