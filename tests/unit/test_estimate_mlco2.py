"""`estimate(dataset="mlco2")`: the ML CO2 Impact calculator on its own data and formula."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from carbonlog.equivalents import CAR_KM, equivalents
from carbonlog.estimate import estimate
from carbonlog.intensity.tables import tables

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference-data" / "mlco2-impact"


def _package_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("carbonlog").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def test_every_pair_of_the_calculators_tables_is_its_formula():
    """All 48 x 82 pairs: TDP x hours / 1000 x impact / 1000, no PUE, the impact as written."""
    hardware, regions = _package_csv("mlco2_hardware.csv"), _package_csv("mlco2_regions.csv")
    assert (len(hardware), len(regions)) == (48, 82)
    pairs = 0
    for hw in hardware:
        for region in regions:
            e = estimate(
                hw["name"],
                hours=37,
                location=f"{region['provider']}:{region['region']}",
                dataset="mlco2",
            )
            expected_kwh = float(hw["tdp_w"]) * 37 / 1000
            assert e.energy_kwh == expected_kwh and e.pue == 1.0
            assert e.co2_kg == pytest.approx(expected_kwh * float(region["g_per_kwh"]) / 1000)
            assert e.offset_kg == pytest.approx(e.co2_kg * float(region["offset_ratio"]))
            pairs += 1
    assert pairs == 3936


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference data not beside the checkout")
def test_the_built_tables_are_the_calculators_files():
    """mlco2_*.csv carry impact.csv's and gpus.csv's figures unchanged, in their order."""
    with (REFERENCE / "impact.csv").open(encoding="utf-8") as f:
        impact = list(csv.DictReader(f))
    regions = _package_csv("mlco2_regions.csv")
    assert [(r["provider"], r["region"] or "fr-par") for r in impact] == [
        (r["provider"], r["region"]) for r in regions
    ]
    for raw, row in zip(impact, regions, strict=True):
        assert float(raw["impact"]) == float(row["g_per_kwh"])
        assert float(raw["offsetRatio"]) / 100 == float(row["offset_ratio"])
    with (REFERENCE / "gpus.csv").open(encoding="utf-8") as f:
        gpus = list(csv.reader(f))[1:]
    hardware = _package_csv("mlco2_hardware.csv")
    assert [(g[0], float(g[2])) for g in gpus] == [(h["name"], float(h["tdp_w"])) for h in hardware]


# Rows worked by hand the way the calculator's page computes them (js/grayscale.js setDetails,
# js/data.js parseProvidersData): impact = parseInt(impact.csv's figure);
#   kWh = round2(W x h / 1000); kg/kWh = round2(impact / 1000); kg = round2(kWh x kg/kWh);
#   offset = round2(kg x offsetRatio / 100); cleanest = round2(kWh x its impact / 1000),
# round2 being toFixed(2): the exact binary value, halves up (0.105 is 0.10499.. -> 0.10).
CALCULATOR_ROWS = [
    # hardware, hours, region, -> kg/kWh, kWh, kg, offset kg, cleanest region, its kg
    ("T4", 100, "gcp:us-central1", 0.57, 7.00, 3.99, 3.99, "gcp:europe-west6", 0.11),
    ("A100 SXM4 80 GB", 24, "aws:us-east-1", 0.37, 9.60, 3.55, 0.00, "aws:ca-central-1", 0.19),
    ("RTX 2080 Ti", 40, "azure:westeurope", 0.57, 10.00, 5.70, 5.70, "azure:canadaeast", 0.2),
    ("H100 SXM", 10, "gcp:europe-west6", 0.02, 7.00, 0.14, 0.14, "gcp:europe-west6", 0.11),
    ("Tesla K80", 3, "aws:eu-west-3", 0.1, 0.90, 0.09, 0.00, "aws:ca-central-1", 0.02),
    ("TPUv3 Chip", 1, "coreweave:lga1", 0.28, 0.28, 0.08, 0.00, "coreweave:LGA1", 0.08),
]


@pytest.mark.parametrize(
    ("hardware", "hours", "region", "kg_per_kwh", "kwh", "kg", "offset", "cleanest", "best_kg"),
    CALCULATOR_ROWS,
)
def test_rounded_it_shows_the_calculators_figures(
    hardware, hours, region, kg_per_kwh, kwh, kg, offset, cleanest, best_kg
):
    e = estimate(hardware, hours=hours, location=region, dataset="mlco2", rounded=True)
    assert e.grid.g_per_kwh == pytest.approx(kg_per_kwh * 1000)
    assert (e.energy_kwh, e.co2_kg, e.offset_kg) == (kwh, kg, offset)
    assert (e.cleanest.code, e.cleanest_co2_kg) == (cleanest, best_kg)


def test_rounding_takes_exact_halves_up_as_javascript_does():
    options = {"location": "gcp:us-central1", "dataset": "mlco2", "rounded": True}
    e = estimate("T4", hours=1, tdp_w=125, **options)
    assert e.energy_kwh == 0.13  # 0.125 is exact in binary: toFixed(2) gives 0.13, round() 0.12
    assert e.co2_kg == 0.07  # 0.13 x 0.57 = 0.0741


def test_the_statement_of_a_rounded_estimate_is_the_calculators():
    text = estimate("T4", hours=100, location="gcp:us-central1", dataset="mlco2", rounded=True)
    text = text.statement()
    assert "Google Cloud Platform in region us-central1, which has a carbon efficiency of " in text
    assert "0.57 kgCO₂eq/kWh. A cumulative of 100 hours" in text  # no PUE sentence
    assert "type T4 (TDP of 70W)" in text
    assert "3.99 kgCO₂eq of which 100 percents were directly offset" in text


# GCP under each dataset: the calculator's cleanest is europe-west6 (16 g/kWh in impact.csv,
# the least of its 21 GCP rows); carbonlog's is northamerica-northeast1 (Quebec's life-cycle
# 31.2 g/kWh x PUE 1.12 = 35.0, against Zurich's 36.6 x 1.12 = 41.0).
def test_cleanest_gcp_region_of_every_gcp_region_under_both_datasets():
    calculator = [c for c in _package_csv("mlco2_regions.csv") if c["provider"] == "gcp"]
    assert len(calculator) == 21
    for row in calculator:
        e = estimate("T4", hours=10, location=f"gcp:{row['region']}", dataset="mlco2")
        assert e.cleanest.code == "gcp:europe-west6" and e.cleanest.g_per_kwh == 16
        assert e.cleanest_factor == pytest.approx(float(row["g_per_kwh"]) / 16)
    ours = [code for code, g in tables().clouds.items() if g.provider == "gcp"]
    assert len(ours) == 40
    for code in ours:
        e = estimate("T4", hours=10, location=code)
        assert e.cleanest.code == "gcp:northamerica-northeast1"
        assert e.cleanest.g_per_kwh == pytest.approx(31.2337) and e.cleanest.pue == 1.12


def test_the_papers_figures_are_the_calculators_not_carbonlogs():
    """Lacoste et al.'s Iowa (azure centralus) and Quebec figures are the calculator's data."""
    iowa = estimate("T4", location="azure:centralus", dataset="mlco2").grid
    assert iowa.g_per_kwh == 736.6 and "SRMW" in iowa.source
    assert estimate("T4", location="azure:canadaeast", dataset="mlco2").grid.g_per_kwh == 20
    ours = estimate("T4", location="azure:centralus").grid
    assert ours.location == "US-IA" and ours.convention == "direct"


def test_a_private_infrastructure_is_the_intensity_given():
    e = estimate("T4", hours=10, intensity=500, dataset="mlco2", rounded=True)
    assert (e.energy_kwh, e.co2_kg, e.offset_kg) == (0.7, 0.35, 0)
    assert e.cleanest is None and e.grid.kind == "user"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"location": "gcp:us-central1", "pue": 1.1}, "no PUE"),
        ({"location": "gcp:us-central1", "compare_hardware": "L4"}, "compares no hardware"),
        ({"location": "FR"}, "cloud regions only"),
        ({"location": "gcp:us-east5"}, "no region"),  # newer than the calculator's file
        ({}, "needs one of the calculator's cloud regions"),
        ({"location": "FR", "dataset": "carbonlog", "rounded": True}, "dataset='mlco2'"),
        ({"location": "FR", "dataset": "codecarbon"}, "dataset must be"),
    ],
)
def test_what_the_calculator_cannot_do_is_refused(kwargs, message, monkeypatch):
    monkeypatch.delenv("CARBONLOG_LOCATION", raising=False)
    monkeypatch.delenv("CARBONLOG_INTENSITY", raising=False)
    with pytest.raises(ValueError, match=message):
        estimate("T4", **{"dataset": "mlco2", **kwargs})


def test_its_equivalents_are_the_calculators_epa_figures():
    # 3.98e-4 t CO2e per mile / 1.609344 km per mile = 247.3 g/km, 2.3 x the EEA's 106.8
    assert equivalents(2.473, "mlco2")["car_km"] == pytest.approx(10.0, rel=1e-4)
    assert equivalents(2.473)["car_km"] == pytest.approx(2.473 / CAR_KM.kg_per_unit)
    assert equivalents(60.0, "mlco2")["tree_seedlings"] == pytest.approx(1.0)


def test_the_cli_reproduces_a_calculator_statement():
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLOG_")}
    paths = [str(REPO / "src"), environ.get("PYTHONPATH")]
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    args = ["estimate", "--hardware", "T4", "--hours", "100", "--location", "gcp:us-central1"]
    args += ["--dataset", "mlco2", "--rounded"]
    run = subprocess.run(
        [sys.executable, "-m", "carbonlog.cli", *args, "--json"],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    facts = json.loads(run.stdout)
    assert (facts["dataset"], facts["energy_kwh"], facts["co2_kg"]) == ("mlco2", 7.0, 3.99)
    assert facts["cleanest_location"] == "gcp:europe-west6" and facts["cleanest_co2_kg"] == 0.11
    assert facts["equivalents"]["car_km"] == pytest.approx(3.99 / 0.2473057, rel=1e-6)
    text = subprocess.run(
        [sys.executable, "-m", "carbonlog.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    ).stdout
    assert "ML CO2 Impact calculator's" in text and "average US passenger vehicle" in text
