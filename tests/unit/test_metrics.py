"""metrics.py alone: the per-interval dict in both sets, the totals, the renamed keys and the
provenance, built from records with known figures."""

from __future__ import annotations

import dataclasses

import pytest

from carbonlog import metrics
from carbonlog.interval import Interval, Summary
from carbonlog.units import J_PER_KWH

INTERVAL = Interval(
    label="epoch",
    index=0,
    started_at_s=0.0,
    duration_s=36.0,
    gpu_j=0.5 * J_PER_KWH,
    cpu_j=0.25 * J_PER_KWH,
    ram_j=0.25 * J_PER_KWH,
    pue=1.5,
    intensity_g_per_kwh=200.0,
    intensity_source="test",
    energy_kwh_total=3.0,
    co2_kg_total=0.6,
    forecast_co2_kg=6.0,
    forecast_energy_kwh=30.0,
    samples=1000.0,
    tokens=54_000.0,
)


def test_the_full_set_holds_every_key_and_the_identities():
    full = metrics.to_dict(INTERVAL, keys="full", saved_vs_scratch_kg=1.0)
    assert set(full) == {f"carbon/{k}" for k in (*metrics.KEYS, *metrics.OPTIONAL_KEYS)}
    assert full["carbon/energy_kwh"] == pytest.approx(1.5)
    assert full["carbon/co2_kg"] == pytest.approx(0.3)
    assert full["carbon/gpu_kwh"] + full["carbon/cpu_kwh"] + full["carbon/ram_kwh"] == 1.0
    assert full["carbon/power_w"] * full["carbon/duration_s"] == pytest.approx(J_PER_KWH)
    assert full["carbon/energy_per_sample_j"] == pytest.approx(1.5 * J_PER_KWH / 1000)  # 5,400 J
    assert full["carbon/energy_per_token_j"] == pytest.approx(100.0)  # 5.4 MJ / 54,000 tokens
    assert all(isinstance(v, float) for v in full.values())


def test_the_work_keys_are_published_only_where_the_framework_counted_it():
    uncounted = dataclasses.replace(INTERVAL, samples=None, tokens=None)
    full = metrics.to_dict(uncounted, keys="full")
    assert "carbon/energy_per_sample_j" not in full and "carbon/energy_per_token_j" not in full
    samples_only = metrics.to_dict(dataclasses.replace(INTERVAL, tokens=None), keys="full")
    assert "carbon/energy_per_sample_j" in samples_only
    assert "carbon/energy_per_token_j" not in samples_only
    assert "carbon/energy_per_sample_j" not in metrics.to_dict(INTERVAL, keys="compact")


def test_the_compact_set_is_the_interval_its_totals_and_power():
    compact = metrics.to_dict(INTERVAL, keys="compact", prefix="co2/")
    assert set(compact) == {f"co2/{k}" for k in metrics.COMPACT_KEYS}
    saved = metrics.to_dict(INTERVAL, keys="compact", saved_vs_scratch_kg=2.0)
    assert saved["carbon/co2_saved_vs_scratch_kg"] == 2.0
    with pytest.raises(ValueError, match="metrics must be one of"):
        metrics.check_metric_set("everything")


def test_totals_of_a_fit_and_of_a_stage():
    summary = Summary(None, "completed", 72.0, 0, 0, 0, 3.0, 0.6, intervals=[INTERVAL])
    assert metrics.totals_dict(summary, saved_vs_scratch_kg=0.1) == {
        "carbon/energy_kwh_total": 3.0,
        "carbon/co2_kg_total": 0.6,
        "carbon/duration_s_total": 72.0,
        "carbon/co2_saved_vs_scratch_kg": 0.1,
    }
    staged = metrics.totals_dict(summary, stage="test")
    assert staged["carbon/test/duration_s"] == 72.0
    assert staged["carbon/test/intensity_g_per_kwh"] == 200.0
    assert metrics.totals_dict(Summary(None, "completed", 0, 0, 0, 0, 0, 0)) == {}


def test_renamed_keeps_only_the_keys_under_the_old_prefix():
    values = {"carbon/step/co2_kg": 1.0, "carbon/co2_kg": 2.0}
    assert metrics.renamed(values, "carbon/step/", "eval_carbon/") == {"eval_carbon/co2_kg": 1.0}


def test_provenance_says_what_was_measured_and_what_estimated():
    site = {"location": "FR", "g_per_kwh": 56.0, "source": "Ember", "year": 2023, "pue": 1.0}
    said = metrics.provenance(site, measured=("gpu", "cpu", "ram"), estimated=("cpu", "ram"))
    assert said == {
        "carbon/location": "FR",
        "carbon/intensity_g_per_kwh": 56.0,
        "carbon/intensity_source": "Ember",
        "carbon/intensity_year": 2023,
        "carbon/pue": 1.0,
        "carbon/measured": "gpu",
        "carbon/estimated": "cpu,ram",
    }
