"""What a session tells the user on the "carbonlog" logger, on global rank zero alone: the
notes as a fit begins (the scratch hint, a cleaner region), a line per epoch, the forecast, and
the summary at a stage's end, with the greenest start of a forecast the user gave."""

from __future__ import annotations

import logging
import os

from carbonlog import equivalents, savings
from carbonlog._log import say
from carbonlog.intensity import cleanest_region
from carbonlog.interval import Summary
from carbonlog.ledger.records import FIT_STAGE
from carbonlog.report.text import format_co2, format_energy, format_interval, format_summary
from carbonlog.tracking import Tracker
from carbonlog.units import co2_kg

FORECAST_AFTER_EPOCHS = 2
NOTE_DEVICE_KWH = 1.0
"""The energy the cleaner-region note compares regions on (only the ratio is said)."""


class Notes:
    """What a session tells the user on the "carbonlog" logger, on global rank zero alone:
    the notes as a fit begins, a line per epoch and the forecast, the summary at a stage's
    end. `verbose=False` silences all of it; warnings are said elsewhere, whatever it is."""

    def __init__(self, verbose: bool, planning=None):
        self.verbose = bool(verbose)
        self.planning = planning  # a carbonlog.intensity.forecast.Forecast, or None
        self._forecast_said = False

    def fit_begins(self, tracker: Tracker) -> None:
        self._forecast_said = False
        if not self.verbose:
            return
        hint = savings.scratch_hint(tracker.run_info, tracker.ledger)
        for note in (hint, cleaner_region_note(tracker.site.grid)):
            if note:
                say(f"carbonlog: {note}", level=logging.INFO)

    def epoch_ends(self, tracker: Tracker, interval) -> None:
        if not self.verbose:
            return
        say(f"carbonlog: {format_interval(interval)}", level=logging.INFO)
        if not self._forecast_said:
            note = forecast_note(tracker)
            self._forecast_said = note is not None
            if note:
                say(note, level=logging.INFO)

    def stage_ends(self, summary: Summary, stage: str, reference: savings.Reference | None) -> None:
        if not self.verbose:
            return
        say(format_summary(summary, stage), level=logging.INFO)
        if reference is not None and summary.intervals:
            say(f"carbonlog: {reference.statement(summary.co2_kg)}", level=logging.INFO)
        greenest = greenest_note(self.planning, summary) if stage == FIT_STAGE else None
        if greenest:
            say(greenest, level=logging.INFO)


def planning_forecast(value: object):
    """The Forecast `intensity_forecast=` gives (a Forecast, or a file of one), read now so a
    bad one fails in the user's script; None for None."""
    if value is None:
        return None
    from carbonlog.intensity.forecast import Forecast, ForecastError
    from carbonlog.intensity.forecast_shapes import read_forecasts

    if isinstance(value, Forecast):
        return value
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"intensity_forecast must be a Forecast or a file, got {value!r}")
    found = read_forecasts(value)
    if len(found) != 1:
        raise ForecastError(f"{value} holds {len(found)} forecasts: pass the one of this run")
    return found[0]


def greenest_note(forecast, summary: Summary) -> str | None:
    """`started at 2026-12-01 10:00 UTC; the greenest 6 h in the forecast began at ... UTC, 40%
    less CO2`: the fit's start against the greenest start of its length from then on, in a
    forecast the user gave (no network, nothing waits); None where it does not cover the run."""
    from datetime import datetime, timezone

    from carbonlog.intensity.forecast import ForecastError, best_window

    if forecast is None or not summary.intervals or summary.duration_s <= 0:
        return None
    began = datetime.fromtimestamp(summary.intervals[0].started_at_s, timezone.utc)
    try:
        window = best_window(forecast, summary.duration_s / 3600.0, now=began)
    except ForecastError:
        return None
    if window.now != began or not window.saving_ratio:
        return None  # the forecast begins after the run did, or started now was the greenest
    return (
        f"carbonlog: started at {began:%Y-%m-%d %H:%M} UTC; the greenest "
        f"{format_hours(window.hours)} in the forecast began at {window.start:%Y-%m-%d %H:%M} "
        f"UTC, {window.saving_ratio:.0%} less CO2 for the same energy"
    )


def format_hours(hours: float) -> str:
    """`6 h`, `1.5 h`, `25 min`, `40 s`."""
    if hours >= 1:
        return f"{hours:.2g} h"
    return f"{hours * 60:.0f} min" if hours >= 1 / 60 else f"{hours * 3600:.0f} s"


def forecast_note(tracker: Tracker) -> str | None:
    """What the run will use and emit at its planned length, once FORECAST_AFTER_EPOCHS
    intervals tell; None before (or without a planned length)."""
    intervals = tracker.intervals
    if len(intervals) < FORECAST_AFTER_EPOCHS or intervals[-1].forecast_co2_kg is None:
        return None
    kwh, kg = intervals[-1].forecast_energy_kwh, intervals[-1].forecast_co2_kg
    picture = equivalents.describe_tangible(kg)
    return (
        f"carbonlog: this run will use about {format_energy(kwh)} and emit about "
        f"{format_co2(kg)} CO2" + (f", {picture}" if picture else "")
    )


def cleaner_region_note(grid) -> str | None:
    """For a cloud region: the same provider's cleanest region and how many times less it emits."""
    best, best_kg = cleanest_region(grid, device_kwh=NOTE_DEVICE_KWH, user_pue=None)
    if best is None or best.code == grid.code:
        return None
    here_kg = co2_kg(NOTE_DEVICE_KWH * (grid.pue or 1.0), grid.g_per_kwh)
    factor = f"{here_kg / best_kg:.0f}x less" if best_kg > 0 else "almost nothing"
    return f"{best.name} ({best.code}) would emit {factor} than {grid.name} for the same energy"
