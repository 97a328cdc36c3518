"""best_window on hand-worked forecasts (uneven steps, gaps, a run ending on an edge), checked
against a brute-force search; and every forecast shape read, with its failures."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from carbonlog.intensity.forecast import Forecast, ForecastError, Step, best_window, parse_time
from carbonlog.intensity.forecast_shapes import (
    LB_KG,
    parse_csv,
    parse_forecasts,
    read_forecasts,
)

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def forecast(*steps: tuple[float, float, float], location: str = "FR") -> Forecast:
    """A forecast from (start h, end h, g/kWh) steps after T0."""
    return Forecast(location, tuple(Step(at(a), at(b), g) for a, b, g in steps), "test")


# -- best_window, worked by hand -----------------------------------------------------------


def test_uneven_steps_mean_is_time_weighted():
    f = forecast((0, 1, 100), (1, 1.5, 400), (1.5, 4, 50), (4, 5, 200))
    w = best_window(f, 2, now=T0)
    assert (w.start, w.end, w.mean_g_per_kwh) == (at(1.5), at(3.5), 50)
    # starting now: 1 h at 100, 0.5 h at 400, 0.5 h at 50 -> 325 g/kWh x h over 2 h
    assert w.now_mean_g_per_kwh == pytest.approx(162.5)
    assert w.saving_ratio == pytest.approx(1 - 50 / 162.5)


def test_the_best_start_can_be_where_the_run_ends_on_a_step_edge():
    f = forecast((0, 1, 50), (1, 2, 10), (2, 3, 100))
    w = best_window(f, 1.5, now=T0)
    # from 00:30: 0.5 h at 50 + 1 h at 10 = 35 over 1.5 h; from 00:00: 55/1.5; from 01:00: 60/1.5
    assert w.start == at(0.5)
    assert w.mean_g_per_kwh == pytest.approx(35 / 1.5)


def test_equal_windows_take_the_earliest():
    w = best_window(forecast((0, 1, 80), (1, 5, 20)), 1, now=T0)
    assert w.start == at(1)


def test_a_window_never_spans_a_gap():
    f = forecast((0, 1, 10), (2, 5, 100))
    w = best_window(f, 2, now=T0)
    assert w.start == at(2) and w.mean_g_per_kwh == 100
    assert w.now_mean_g_per_kwh is None and w.saving_ratio is None


def test_now_inside_a_step_starts_the_search_there():
    f = forecast((0, 2, 100), (2, 3, 10), (3, 4, 300))
    w = best_window(f, 1, now=at(1.25))
    assert (w.now, w.start, w.mean_g_per_kwh) == (at(1.25), at(2), 10)
    assert w.now_mean_g_per_kwh == pytest.approx(0.75 * 100 + 0.25 * 10)


def test_finish_by_bounds_the_end():
    f = forecast((0, 2, 100), (2, 3, 300), (3, 4, 10))
    assert best_window(f, 1, now=T0, finish_by=at(3)).start == at(0)
    with pytest.raises(
        ForecastError, match=r"to 2026-12-01T00:30:00Z \(the latest end asked\) is 0.5 h"
    ):
        best_window(f, 1, now=T0, finish_by=at(0.5))


def test_a_run_longer_than_the_horizon_is_said_plainly():
    with pytest.raises(
        ForecastError, match=r"a run of 30 h does not fit: .* \(the end of the forecast\) is 5 h"
    ):
        best_window(forecast((0, 5, 100)), 30, now=T0)
    with pytest.raises(
        ForecastError,
        match="ends at 2026-12-01T05:00:00Z, before the earliest start 2026-12-01T06:00:00Z",
    ):
        best_window(forecast((0, 5, 100)), 1, now=at(6))


def test_no_stretch_without_a_gap_is_long_enough():
    with pytest.raises(ForecastError, match="no stretch of the forecast without a gap"):
        best_window(forecast((0, 1, 10), (2, 3, 10)), 1.5, now=T0)


@pytest.mark.parametrize("hours", [0, -1, float("nan"), float("inf"), True, "2"])
def test_bad_hours_are_refused(hours):
    with pytest.raises(ForecastError, match="hours must be a number above 0"):
        best_window(forecast((0, 5, 100)), hours, now=T0)


def test_a_naive_now_is_refused():
    with pytest.raises(ForecastError, match="now must be a datetime with a time zone"):
        best_window(forecast((0, 5, 100)), 1, now=datetime(2026, 12, 1))


def test_best_window_matches_a_brute_force_search():
    rng = random.Random(7)
    for _ in range(20):
        edges, t = [], 0.0
        for _ in range(rng.randint(3, 12)):
            length = rng.choice([0.25, 0.5, 1.0, 1.5])
            edges.append((t, t + length, rng.uniform(20, 600)))
            t += length
        f = forecast(*edges)
        hours = rng.uniform(0.3, t * 0.8)
        w = best_window(f, hours, now=T0)

        def mean(start_h: float, edges=edges, hours=hours) -> float:
            total = 0.0
            for a, b, g in edges:
                total += g * max(0.0, min(b, start_h + hours) - max(a, start_h))
            return total / hours

        grid = [i / 60 for i in range(int((t - hours) * 60) + 1)]
        assert w.mean_g_per_kwh <= min(mean(s) for s in grid) + 1e-9
        assert w.mean_g_per_kwh == pytest.approx(mean((w.start - T0).total_seconds() / 3600))


def test_to_dict_holds_iso_times_with_z():
    d = best_window(forecast((0, 1, 100), (1, 3, 50)), 1, now=T0).to_dict()
    assert d["start"] == "2026-12-01T01:00:00Z" and d["now"] == "2026-12-01T00:00:00Z"
    assert d["saving_ratio"] == pytest.approx(0.5)


# -- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T10:00Z",
        "2026-12-01T10:00:00.000Z",
        "2026-12-01T11:00:00+01:00",
        "2026-12-01T05:00-05:00",
    ],
)
def test_timestamps_with_a_zone_become_utc(text):
    assert parse_time(text) == datetime(2026, 12, 1, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["2026-12-01T10:00", "2026-12-01 10:00:00"])
def test_timestamps_without_a_zone_are_refused(text):
    with pytest.raises(ForecastError, match="without a time zone"):
        parse_time(text)


# -- shapes ----------------------------------------------------------------------------------


def sdk(location: str, points: list[tuple[str, int, float]]) -> dict:
    data = [{"location": location, "timestamp": t, "duration": d, "value": v} for t, d, v in points]
    return {"location": location, "generatedAt": "2026-12-01T00:00:00Z", "forecastData": data}


def test_carbon_aware_sdk_durations_are_minutes_and_each_location_its_forecast():
    body = [
        sdk("eastus", [("2026-12-01T00:00:00Z", 30, 400.0), ("2026-12-01T00:30:00Z", 30, 300.0)]),
        sdk("westus", [("2026-12-01T00:00:00Z", 60, 200.0)]),
    ]
    east, west = parse_forecasts(body, "f.json")
    assert east.location == "eastus" and west.location == "westus"
    assert [(s.start, s.end, s.g_per_kwh) for s in east.steps] == [
        (at(0), at(0.5), 400.0),
        (at(0.5), at(1), 300.0),
    ]
    assert west.end == at(1) and "Carbon Aware SDK" in west.source


def test_a_rolling_sdk_forecast_is_cut_at_each_next_point():
    """With windowSize the SDK returns points 5 min apart, each lasting the window."""
    times = ["2026-12-01T00:00:00Z", "2026-12-01T00:05:00Z", "2026-12-01T00:10:00Z"]
    (f,) = parse_forecasts([sdk("eastus", [(t, 30, 100.0) for t in times])], "f")
    assert [s.end - s.start for s in f.steps] == [timedelta(minutes=5)] * 2 + [
        timedelta(minutes=30)
    ]


def test_uk_carbon_intensity_data_shape():
    body = {
        "data": [
            {
                "from": "2026-12-01T00:00Z",
                "to": "2026-12-01T00:30Z",
                "intensity": {"forecast": 180, "actual": None, "index": "moderate"},
            },
            {
                "from": "2026-12-01T00:30Z",
                "to": "2026-12-01T01:00Z",
                "intensity": {"forecast": 90, "actual": None, "index": "low"},
            },
        ]
    }
    (f,) = parse_forecasts(body, "uk.json")
    assert f.location == "GB" and f.signal == "average"
    assert [s.g_per_kwh for s in f.steps] == [180, 90] and f.end == at(1)


def test_electricity_maps_points_last_an_hour():
    body = {
        "zone": "DE",
        "forecast": [
            {"carbonIntensity": 300, "datetime": "2026-12-01T00:00:00.000Z"},
            {"carbonIntensity": 250, "datetime": "2026-12-01T01:00:00.000Z"},
        ],
        "updatedAt": "2026-11-30T23:47:00.000Z",
    }
    (f,) = parse_forecasts(body, "em")
    assert f.location == "DE" and f.end == at(2)


def test_watttime_lbs_per_mwh_become_g_per_kwh():
    body = {
        "data": [
            {"point_time": "2026-12-01T00:00:00+00:00", "value": 1000.0},
            {"point_time": "2026-12-01T00:05:00+00:00", "value": 500.0},
        ],
        "meta": {
            "region": "CAISO_NORTH",
            "signal_type": "co2_moer",
            "units": "lbs_co2_per_mwh",
            "data_point_period_seconds": 300,
        },
    }
    (f,) = parse_forecasts(body, "wt")
    assert f.location == "CAISO_NORTH" and f.signal == "marginal"
    assert f.steps[0].g_per_kwh == pytest.approx(1000 * LB_KG)  # 453.6 g/kWh
    assert f.end == at(10 / 60)


def test_watttime_health_damage_is_not_read_as_co2():
    body = {
        "data": [{"point_time": "2026-12-01T00:00:00Z", "value": 1}],
        "meta": {"signal_type": "health_damage", "units": "$_per_mwh"},
    }
    with pytest.raises(ForecastError, match="not a CO2 intensity"):
        parse_forecasts(body, "wt")


def test_csv_steps_last_until_the_next_row():
    f = parse_csv(
        "timestamp,g_per_kwh\n2026-12-01T01:00:00+01:00,120\n2026-12-01T00:30:00Z,60\n",
        "f.csv",
        "FR",
    )
    assert [(s.start, s.end, s.g_per_kwh) for s in f.steps] == [
        (at(0), at(0.5), 120),
        (at(0.5), at(1), 60),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,value\n2026-12-01T00:00Z,1\n", "starts with the header"),
        ("timestamp,g_per_kwh\n2026-12-01T00:00Z,100\n", "one point has no length"),
        ("timestamp,g_per_kwh\n2026-12-01T00:00Z,100\n2026-12-01T01:00Z,5000\n", "implausible"),
        ("timestamp,g_per_kwh\n2026-12-01T00:00Z,100\n2026-12-01T00:00Z,90\n", "two steps start"),
        ("timestamp,g_per_kwh\n2026-12-01T00:00,100\n2026-12-01T01:00,90\n", "without a time zone"),
        ("timestamp,g_per_kwh\n2026-12-01T00:00Z,abc\n2026-12-01T01:00Z,90\n", "is not a number"),
    ],
)
def test_bad_csv_rows_are_refused(text, match):
    with pytest.raises(ForecastError, match=match):
        parse_csv(text, "f.csv")


@pytest.mark.parametrize(
    "body", [{}, [], {"data": []}, {"forecast": "x"}, [{"forecastData": [{"value": 1}]}], 42]
)
def test_unknown_or_malformed_shapes_are_refused(body):
    with pytest.raises(ForecastError):
        parse_forecasts(body, "x.json")


def test_read_forecasts_tells_json_from_csv(tmp_path):
    json_file = tmp_path / "f.json"
    json_file.write_text(json.dumps([sdk("eastus", [("2026-12-01T00:00:00Z", 60, 100.0)])]))
    csv_file = tmp_path / "f.txt"
    csv_file.write_text("timestamp,g_per_kwh\n2026-12-01T00:00Z,1\n2026-12-01T01:00Z,2\n")
    assert read_forecasts(json_file)[0].location == "eastus"
    assert read_forecasts(csv_file, "FR")[0].location == "FR"
    assert best_window(csv_file, 1, now=T0).mean_g_per_kwh == 1
    with pytest.raises(ForecastError, match="cannot read"):
        read_forecasts(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ForecastError, match="not valid JSON"):
        read_forecasts(tmp_path / "bad.json")
