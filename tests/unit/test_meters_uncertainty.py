"""Each method's band on hand-worked rows, and the one warning for too-short intervals."""

from __future__ import annotations

import sys
import time

import pytest

from carbonlog.meters.uncertainty import (
    MODEL_FRACTION,
    NVML_UPDATE_S,
    SAMPLED_COVERAGE,
    SAMPLED_SWING,
    counter_band_j,
    model_band_j,
    sampled_band_j,
    short_window_note,
)
from tests.fakes.pynvml_fake import FakeGpu, FakeNvml


def test_the_figures_are_the_published_ones():
    assert (NVML_UPDATE_S, SAMPLED_COVERAGE, MODEL_FRACTION) == (0.1, 0.25, 0.40)
    assert round(SAMPLED_SWING, 3) == 0.826  # (690 - 120) / 690


@pytest.mark.parametrize(
    ("energy_j", "window_s", "update_s", "band_j"),
    [
        (300.0, 0.3, 0.1, 150.0),  # 300 J read: at least 1 kW x 0.2 s, so off by 100 ms of it
        (36_000.0, 60.0, 0.1, 36_000 * 0.1 / 59.9),  # 600 W for a minute: 0.17 %
        (500.0, 2.0, 0.001, 500 * 0.001 / 1.999),  # RAPL
        (100.0, 0.15, 0.1, 100.0),  # two updates or less: the whole reading
        (100.0, 0.0, 0.1, 0.0),
    ],
)
def test_a_counter_is_off_by_one_update_of_its_mean_power(energy_j, window_s, update_s, band_j):
    assert counter_band_j(energy_j, window_s, update_s) == pytest.approx(band_j)


def test_sampling_adds_the_unseen_share_shrinking_with_the_root_of_the_updates():
    # 100 updates in 10 s: 10.1 J of edge, plus 1000 x 0.75 x 0.826 / 10 = 61.96 J unseen
    assert sampled_band_j(1000.0, 10.0, 0.1) == pytest.approx(1000 / 99 + 61.957, abs=1e-3)
    # 10,000 updates in 1000 s: 0.1 J + 6.196 J per kJ
    assert sampled_band_j(1000.0, 1000.0, 0.1) == pytest.approx(0.1 + 6.1957, abs=1e-3)
    # shorter than one update: the whole reading, plus one update's worth of the unseen share
    assert sampled_band_j(10.0, 0.05, 0.1) == pytest.approx(10.0 + 10 * 0.75 * SAMPLED_SWING)
    assert sampled_band_j(10.0, 0.0, 0.1) == 0.0


def test_a_model_is_off_by_a_share_of_its_energy_whatever_the_window():
    assert model_band_j(1000.0) == pytest.approx(400.0)
    assert model_band_j(-5.0) == pytest.approx(2.0)


def test_short_intervals_of_a_counter_are_noted_long_ones_and_models_not():
    note = short_window_note("gpu", "counter", counter_band_j(300.0, 0.3, 0.1), 300.0)
    assert note is not None and "+-50 %" in note and "gpu" in note
    assert short_window_note("gpu", "counter", counter_band_j(300.0, 2.0, 0.1), 300.0) is None
    assert short_window_note("cpu", "model", model_band_j(300.0), 300.0) is None
    assert short_window_note("gpu", "counter", 0.0, 0.0) is None


def test_a_tracker_marking_0_3_s_epochs_on_a_counter_says_so_once(monkeypatch, carbon_warnings):
    from carbonlog.tracking import Tracker

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(profile=600)]))
    tracker = Tracker(intensity=100.0, cpu=None, ram=False, ledger=False).start()
    for _ in range(3):
        time.sleep(0.3)
        tracker.mark("epoch")
    tracker.stop()
    said = [w.getMessage() for w in carbon_warnings if "too short" in w.getMessage()]
    assert len(said) == 1 and "gpu meter (counter)" in said[0]
