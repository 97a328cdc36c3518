"""Offline tables, location resolution, configuration order and PUE."""

from __future__ import annotations

import csv
import logging
import math
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from carbonlog.intensity import PLAUSIBLE_PUE, Grid, coverage, intensity, resolve_site
from carbonlog.intensity.feed import PLAUSIBLE_G_PER_KWH
from carbonlog.intensity.tables import tables

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237


# Resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("FR", "FR"),
        ("fr", "FR"),
        ("FRA", "FR"),
        ("France", "FR"),
        (" france ", "FR"),
        ("Côte d'Ivoire", "CI"),
        ("cote divoire", "CI"),
        ("UK", "GB"),
        ("GBR", "GB"),
        ("NA", "NA"),
        ("Namibia", "NA"),  # "NA" is not a missing value
        ("US-CA", "US-CA"),
        ("us-ca", "US-CA"),
        ("California", "US-CA"),
        ("CA-QC", "CA-QC"),
        ("Quebec", "CA-QC"),
        ("CA-MB", "CA-MB"),
        ("AU-NSW", "AU-NSW"),
        ("CN-BJ", "CN-BJ"),
        ("SE-SE3", "SE-SE3"),
        ("NO-NO4", "NO-NO4"),
        ("Georgia", "GE"),
        ("US-GA", "US-GA"),  # the country wins the bare name
        ("world", "WORLD"),
        ("gcp:us-central1", "gcp:us-central1"),
        ("GCP:US-CENTRAL1", "gcp:us-central1"),
        ("google:us-central1", "gcp:us-central1"),
        ("aws:eu-north-1", "aws:eu-north-1"),
        ("azure:westeurope", "azure:westeurope"),
        ("azure:West Europe", "azure:westeurope"),
        ("gcp:me-central1", "gcp:me-central1"),
    ],
)
def test_locations_resolve_case_insensitively(location, code):
    assert intensity(location).code == code


def test_a_grid_row_carries_value_source_year_and_name():
    grid = intensity("FR")
    assert isinstance(grid, Grid)
    assert grid.name == "France"
    assert 0 < grid.g_per_kwh < 200
    assert grid.year >= 2022 and grid.source
    assert grid.provider is None and grid.pue is None and grid.offset_ratio == 0


def test_us_states_are_egrid_2023_converted_from_lbs_per_mwh():
    iowa = intensity("US-IA")  # no life-cycle figure in any source: eGRID's, at the plants
    assert iowa.g_per_kwh == pytest.approx(634.156 * LBS_PER_MWH_TO_G_PER_KWH, abs=1e-3)
    assert iowa.year == 2023 and "eGRID2023" in iowa.source and iowa.convention == "direct"


def test_cloud_regions_carry_provider_pue_offset_and_grid():
    region = intensity("gcp:us-central1")
    assert region.name == "GCP us-central1 (Iowa)"
    assert region.provider == "gcp" and region.location == "US-IA"
    assert region.g_per_kwh == 430 and region.year == 2023  # Google's 2023 region figure
    assert region.pue == pytest.approx(1.11) and region.offset_ratio == 1.0
    aws = intensity("aws:eu-north-1")
    assert aws.location == "SE" and aws.g_per_kwh == intensity("SE").g_per_kwh
    assert aws.pue == pytest.approx(1.2)  # AWS fleet PUE where no data-centre figure exists


def test_newest_annual_average_wins_per_country():
    # carbontracker (Ember/OWID) carries France for a newer year than Green Algorithms' 2020
    grid = intensity("FR")
    assert grid.year > 2020 and "Our World in Data" in grid.source


@pytest.mark.parametrize(
    ("location", "suggestion"),
    [
        ("Frnace", "France"),
        ("us-central1", "gcp:us-central1"),  # a bare region is never guessed
        ("gcp:us-centrl1", "gcp:us-central1"),
        ("azure:westeurop", "azure:westeurope"),
        ("US-CAL", "US-CA"),
    ],
)
def test_unknown_locations_list_close_matches(location, suggestion):
    with pytest.raises(ValueError, match="unknown location") as info:
        intensity(location)
    assert repr(suggestion) in str(info.value)


@pytest.mark.parametrize("location", ["", "   ", "XX", "gcp:", "mars:olympus-1"])
def test_nonsense_locations_are_errors(location):
    with pytest.raises(ValueError):
        intensity(location)


# Tables ---------------------------------------------------------------------------------


def _csv(name: str) -> list[dict[str, str]]:
    text = resources.files("carbonlog").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def test_every_grid_row_has_a_sane_value_a_source_and_a_year():
    for row in _csv("grids.csv"):
        value = float(row["g_per_kwh"])
        assert math.isfinite(value) and 0 <= value < 2000, row
        assert row["source"] and row["year"], row
        assert row["kind"] in ("world", "country", "subdivision"), row


def test_every_cloud_region_sits_on_a_known_grid_and_keeps_its_sources():
    t = tables()
    for grid in t.clouds.values():
        assert grid.location in t.grids, grid.code
        assert grid.source and grid.year, grid.code
        assert 0 <= grid.offset_ratio <= 1
        assert grid.pue is None or 1 <= grid.pue < 2
        assert grid.provider in t.providers


def test_coverage_reports_counts_and_years():
    facts = coverage()
    assert facts["country"]["count"] >= 200
    assert facts["subdivision"]["count"] >= 100
    per_provider = facts["cloud"]["per_provider"]
    assert per_provider["gcp"] >= 30 and per_provider["aws"] >= 20 and per_provider["azure"] >= 40
    assert facts["country"]["years"][1] >= 2023
    assert facts["world"]["g_per_kwh"] == 475


def test_importing_the_package_reads_no_table_and_no_network_module():
    code = (
        "import sys, carbonlog.intensity; "
        "assert 'carbonlog.intensity.tables' not in sys.modules or "
        "sys.modules['carbonlog.intensity.tables'].tables.cache_info().currsize == 0; "
        "assert 'urllib.request' not in sys.modules, 'urllib imported'; "
        "assert 'carbonlog.intensity.live' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Configuration order --------------------------------------------------------------------


def test_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("CARBONLOG_LOCATION", "DE")
    assert resolve_site("FR").grid.code == "FR"
    assert resolve_site().grid.code == "DE"


def test_environment_sets_location_pue_and_intensity(monkeypatch):
    monkeypatch.setenv("CARBONLOG_LOCATION", "gcp:europe-west4")
    monkeypatch.setenv("CARBONLOG_PUE", "1.3")
    monkeypatch.setenv("CARBONLOG_INTENSITY", "123.5")
    site = resolve_site()
    assert site.grid.code == "gcp:europe-west4"
    assert site.pue == 1.3 and site.pue_source == "user"
    assert site.current_g_per_kwh() == (123.5, "user")


def test_bad_environment_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("CARBONLOG_PUE", "fast")
    with pytest.raises(ValueError, match="CARBONLOG_PUE"):
        resolve_site("FR")
    monkeypatch.delenv("CARBONLOG_PUE")
    monkeypatch.setenv("CARBONLOG_LOCATION", "Atlantis")
    with pytest.raises(ValueError, match="CARBONLOG_LOCATION"):
        resolve_site()


def test_no_location_falls_back_to_the_world_average_with_one_warning(carbon_log):
    first = resolve_site()
    second = resolve_site()
    assert first.grid.code == second.grid.code == "WORLD"
    assert first.grid.g_per_kwh == 475
    warnings = [r.getMessage() for r in carbon_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "CARBONLOG_LOCATION" in warnings[0] and "location=" in warnings[0]


def test_explicit_location_or_intensity_does_not_warn(carbon_log):
    resolve_site("FR")
    site = resolve_site(intensity=250)
    assert site.grid.code == "USER" and site.current_g_per_kwh() == (250.0, "user")
    assert not [r for r in carbon_log if r.levelno == logging.WARNING]


def test_explicit_intensity_wins_over_the_table_and_says_user():
    site = resolve_site("gcp:us-central1", intensity="99.5")
    assert site.grid.g_per_kwh == 99.5 and site.grid.source == "user" and site.grid.year is None
    assert site.grid.code == "gcp:us-central1" and site.pue == pytest.approx(1.11)


# PUE and validation ---------------------------------------------------------------------


def test_cloud_regions_take_the_provider_pue_unless_set():
    assert resolve_site("gcp:europe-west1").pue == pytest.approx(1.08)
    assert resolve_site("gcp:europe-west1", pue=1.5).pue == 1.5
    assert resolve_site("FR").pue == 1.0
    assert resolve_site("FR").pue_source == "default"
    assert resolve_site("FR", pue=1.4).describe()["pue"] == 1.4


@pytest.mark.parametrize(
    "pue", [0.9, -1, 5.01, 1e308, float("nan"), float("inf"), "x", True, False]
)
def test_bad_pue_is_an_error_at_construction(pue):
    with pytest.raises(ValueError, match="pue"):
        resolve_site("FR", pue=pue)


@pytest.mark.parametrize(
    "value", [-1, 2000.01, 1e308, float("nan"), float("inf"), "lots", True, False]
)
def test_bad_intensity_is_an_error_at_construction(value):
    with pytest.raises(ValueError, match="intensity"):
        resolve_site("FR", intensity=value)


@pytest.mark.parametrize("option", ["pue", "intensity"])
def test_a_bool_is_refused_by_the_tracker_too(option):
    from carbonlog.errors import ConfigurationError
    from carbonlog.tracking import Tracker

    with pytest.raises(ConfigurationError, match=f"{option} must be a number, got True"):
        Tracker(location="FR", ledger=False, power_w={"gpu": 1.0}, **{option: True})


def test_the_ends_of_the_plausible_ranges_are_allowed():
    assert resolve_site(intensity=0).current_g_per_kwh()[0] == 0
    assert resolve_site(intensity=2000).current_g_per_kwh()[0] == 2000
    assert resolve_site("FR", pue=5).pue == 5


def test_the_plausible_ranges_are_the_documented_ones():
    methodology = (Path(__file__).parents[2] / "docs" / "methodology.md").read_text()
    assert f"{PLAUSIBLE_G_PER_KWH[0]:g} to {PLAUSIBLE_G_PER_KWH[1]:,g} g CO2e/kWh" in methodology
    assert f"PUE from {PLAUSIBLE_PUE[0]:g} to {PLAUSIBLE_PUE[1]:g}" in methodology


def test_describe_is_plain_facts():
    facts = resolve_site("aws:eu-west-3").describe()
    assert facts["location"] == "aws:eu-west-3"
    assert facts["provider"] == "aws" and facts["pue"] == pytest.approx(1.2)
    assert facts["live"] is None and facts["year"]


def test_the_script_rebuilds_the_shipped_tables(tmp_path):
    """The package data is exactly what scripts/build_tables.py makes of the reference data."""
    repo = Path(__file__).resolve().parents[2]
    reference = repo.parent / "shared" / "reference-data"
    if not reference.is_dir():
        pytest.skip("reference data not present beside the checkout")
    (tmp_path / "scripts").mkdir()
    shutil.copy(repo / "scripts" / "build_tables.py", tmp_path / "scripts")
    subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "build_tables.py"), str(reference)],
        check=True,
        capture_output=True,
    )
    for name in ("grids.csv", "clouds.csv", "providers.csv", "hardware.csv"):
        built = (tmp_path / "src" / "carbonlog" / "data" / name).read_text()
        assert built == (repo / "src" / "carbonlog" / "data" / name).read_text(), name
