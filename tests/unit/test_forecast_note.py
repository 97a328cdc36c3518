"""The fit summary's note on the greenest start, from a forecast the user gave the session:
said at the fit's end from memory (no network), absent where the forecast does not cover
the run; a bad forecast fails when the session is built."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from carbonlog.intensity.forecast import ForecastError
from carbonlog.notes import format_hours
from carbonlog.session import FIT, Session

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}


def forecast_csv(path, start: datetime, values) -> str:
    rows = "".join(
        f"{(start + timedelta(hours=i)).isoformat()},{v}\n" for i, v in enumerate(values)
    )
    path.write_text("timestamp,g_per_kwh\n" + rows)
    return str(path)


def fit(session: Session) -> None:
    session.begin(FIT)
    time.sleep(0.05)
    session.epoch_end({})
    session.end()


def notes(records) -> list[str]:
    return [r.getMessage() for r in records if "greenest" in r.getMessage()]


def test_the_fit_summary_says_the_greenest_start_of_the_forecast(tmp_path, carbon_log):
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    path = forecast_csv(tmp_path / "f.csv", hour, [300, 300, 60, 300])  # 60 from hour + 2
    session = Session("torch", power_w=WATTS, ledger=False, intensity_forecast=path)
    fit(session)
    (note,) = notes(carbon_log)
    greenest = hour + timedelta(hours=2)
    assert f"the greenest 0 s in the forecast began at {greenest:%Y-%m-%d %H:%M} UTC" in note
    assert note.endswith("80% less CO2 for the same energy")


def test_no_note_where_the_forecast_does_not_cover_the_run(tmp_path, carbon_log):
    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    path = forecast_csv(tmp_path / "old.csv", past, [300, 60])
    fit(Session("torch", power_w=WATTS, ledger=False, intensity_forecast=path))
    assert notes(carbon_log) == []
    assert any("CO2" in r.getMessage() for r in carbon_log if r.levelno == logging.INFO)


def test_a_bad_forecast_fails_when_the_session_is_built(tmp_path):
    with pytest.raises(TypeError, match="intensity_forecast must be a Forecast or a file"):
        Session("torch", ledger=False, intensity_forecast=42)
    with pytest.raises(ForecastError, match="cannot read"):
        Session("torch", ledger=False, intensity_forecast=tmp_path / "none.csv")
    two = tmp_path / "two.json"
    entry = {"forecastData": [{"timestamp": "2026-12-01T00:00Z", "duration": 60, "value": 1}]}
    two.write_text(json.dumps([{**entry, "location": "a"}, {**entry, "location": "b"}]))
    with pytest.raises(ForecastError, match="holds 2 forecasts"):
        Session("torch", ledger=False, intensity_forecast=two)


@pytest.mark.parametrize(
    ("hours", "shown"), [(6, "6 h"), (1.5, "1.5 h"), (0.5, "30 min"), (0.01, "36 s")]
)
def test_format_hours(hours, shown):
    assert format_hours(hours) == shown
