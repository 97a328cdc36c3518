"""The band, work, embodied and water of a run, summed from its intervals: hand-worked rows."""

from __future__ import annotations

import math

import pytest

from carbonlog.interval import Interval, RunBand, RunSums, Summary, dominant, quadrature
from carbonlog.units import J_PER_KWH


def interval(band_j, methods, **extra) -> Interval:
    """An epoch of 1 kWh at the devices (PUE 1.5, 200 g/kWh) with the given bands."""
    return Interval(
        "epoch", 0, 0.0, 10.0, 0.5 * J_PER_KWH, 0.25 * J_PER_KWH, 0.25 * J_PER_KWH, 1.5, 200.0,
        "test", 1.5, 0.3, band_j=band_j, methods=methods, **extra,
    )  # fmt: skip


def test_counter_bands_add_in_quadrature_and_model_bands_add_up():
    # the docs' hand-worked run: GPU counter 3, 4, 12 J; CPU model 2, 2, 2 J
    sums = RunSums.of(
        interval({"gpu": gpu, "cpu": 2.0}, {"gpu": "counter", "cpu": "model"})
        for gpu in (3.0, 4.0, 12.0)
    )
    assert sums.band_j == pytest.approx({"gpu": 13.0, "cpu": 6.0})
    assert sums.methods == {"gpu": "counter", "cpu": "model"}
    assert quadrature(sums.band_j.values()) == pytest.approx(math.hypot(13.0, 6.0))  # 14.3 J
    assert dominant(sums.band_j, sums.methods) == ("gpu", "counter", pytest.approx(169 / 205))


def test_sampled_bands_are_independent_and_a_mixed_interval_adds_up():
    sums = RunSums.of(
        [
            interval({"gpu": 3.0}, {"gpu": "sampled"}),
            interval({"gpu": 4.0}, {"gpu": "sampled"}),
            interval({"gpu": 10.0}, {"gpu": "counter+model"}),  # the fault's interval
            interval({"gpu": 2.0}, {"gpu": "model"}),  # the fallback after it
        ]
    )
    # sampled: sqrt(9 + 16) = 5 J; mixed and model: 10 + 2 = 12 J; together sqrt(25 + 144)
    assert sums.band_j["gpu"] == pytest.approx(13.0)
    assert sums.methods == {"gpu": "sampled+counter+model"}


def test_the_run_band_is_at_the_pue_and_the_runs_mean_intensity():
    band_j = {"gpu": 0.3 * J_PER_KWH, "cpu": 0.4 * J_PER_KWH}  # 0.5 kWh in quadrature
    band = RunBand.of(band_j, {"gpu": "counter", "cpu": "model"}, 10.0, 2.0, {"pue": 1.5})
    assert band.energy_kwh == pytest.approx(0.75)  # x PUE 1.5
    assert band.co2_kg == pytest.approx(0.15)  # 2 kg / 10 kWh = 200 g/kWh
    assert (band.component, band.method, band.share) == ("cpu", "model", pytest.approx(0.64))
    idle = RunBand.of(band_j, {}, 0.0, 0.0, {"pue": 1.0, "g_per_kwh": 100.0})
    assert idle.co2_kg == pytest.approx(0.05)  # no energy: the site's intensity
    assert RunBand.of({}, {}, 1.0, 0.1, {}) == RunBand(0.0, 0.0, "", "", 0.0)


def test_an_intervals_band_and_energy_per_unit_of_work():
    iv = interval(
        {"gpu": 0.03 * J_PER_KWH, "cpu": 0.04 * J_PER_KWH}, {}, samples=1000.0, tokens=None
    )
    assert iv.energy_band_kwh == pytest.approx(0.05 * 1.5)
    assert iv.co2_band_kg == pytest.approx(0.075 * 0.2)
    assert iv.energy_per_sample_j == pytest.approx(1.5 * J_PER_KWH / 1000)  # 5,400 J
    assert iv.energy_per_token_j is None
    assert interval({}, {}, samples=0.0).energy_per_sample_j is None


def test_work_embodied_and_water_sum_what_is_known():
    sums = RunSums.of(
        [
            interval({}, {}, samples=64.0, embodied_kg=0.001, water_l=None),
            interval({}, {}, samples=36.0, embodied_kg=0.002, water_l=None),
            interval({}, {}),  # the closing interval: no work counted
        ]
    )
    assert (sums.samples, sums.tokens) == (100.0, None)
    assert sums.embodied_kg == pytest.approx(0.003) and sums.water_l is None


def test_the_sums_travel_in_a_resume_state():
    sums = RunSums.of(
        [
            interval({"gpu": 3.0}, {"gpu": "counter"}, samples=8.0, water_l=0.5),
            interval({"gpu": 2.0}, {"gpu": "model"}, samples=8.0),
        ]
    )
    again = RunSums.from_state(sums.state())
    assert again == sums
    again.add(interval({"gpu": 4.0}, {"gpu": "counter"}))
    assert again.band_j["gpu"] == pytest.approx(math.hypot(2.0, 5.0))


def test_a_summary_shows_its_band_and_its_energy_per_sample():
    summary = Summary(
        "run", "completed", 20.0, 0.0, 0.0, 0.0, 2.0, 0.4,
        site={"pue": 1.0}, band_j={"gpu": 0.1 * J_PER_KWH}, methods={"gpu": "counter"},
        samples=2.0 * J_PER_KWH / 100.0,
    )  # fmt: skip
    assert summary.band == RunBand(pytest.approx(0.1), pytest.approx(0.02), "gpu", "counter", 1.0)
    assert summary.energy_per_sample_j == pytest.approx(100.0)
    assert summary.energy_per_token_j is None
