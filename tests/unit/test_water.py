"""Water: on site (WUE x IT energy) and at the power plants (mix-weighted factor x facility
energy), worked by hand; None where no figure exists."""

from __future__ import annotations

import math

import pytest

from carbonlog import water
from carbonlog.errors import ConfigurationError
from carbonlog.intensity import intensity

L_PER_GAL = 3.785411784
# France 2023 in codecarbon 3.3.2 global_energy_mix.json (TWh), times Macknick et al. 2012
# median consumption (gal/MWh): coal 687, gas CC 205, nuclear 672, hydro 4491, biopower
# 553, PV 1, wind 0. Oil (9.71 TWh) and other renewables (0.6 TWh) have no factor: the
# figure is over the other 503.8 TWh, 98 % of 514.11.
FR_GAL_PER_MWH = (
    2.16 * 687 + 31.43 * 205 + 335.65 * 672 + 53.19 * 4491 + 9.5 * 553 + 23.26 * 1 + 48.61 * 0
) / (514.11 - 9.71 - 0.6)
FR_L_PER_KWH = FR_GAL_PER_MWH * L_PER_GAL / 1000  # 3.5888


def test_a_country_with_a_mix_counts_the_power_plants_water_of_the_facility_energy():
    found = water.footprint(10.0, 12.0, "FR")
    assert found.grid.l_per_kwh == pytest.approx(FR_L_PER_KWH, abs=1e-4)
    assert found.offsite_l == pytest.approx(12.0 * FR_L_PER_KWH, rel=1e-4)
    assert found.mix == "FR" and found.grid.year == 2023
    assert found.onsite_l is None and not found.complete  # no data centre: no published WUE
    assert found.water_l == found.offsite_l


def test_a_region_with_a_published_wue_adds_wue_x_it_energy():
    # aws:eu-west-3 is Paris: AWS's fleet WUE 0.12 L/kWh (2025) on 10 kWh of IT energy,
    # France's power plants on the 12 kWh the facility drew
    found = water.footprint(10.0, 12.0, "aws:eu-west-3")
    assert found.wue.l_per_kwh == 0.12 and found.wue.year == 2025
    assert found.onsite_l == pytest.approx(1.2)
    assert found.water_l == pytest.approx(1.2 + 12.0 * FR_L_PER_KWH, rel=1e-4)
    assert found.complete
    assert water.water_l(10.0, 12.0, "aws:eu-west-3") == found.water_l
    assert "0.12 L/kWh" in found.source and "FR mix" in found.source


def test_a_region_without_a_published_wue_has_the_power_plants_part_only():
    found = water.footprint(10.0, 12.0, "gcp:europe-west9")  # Paris; Google publishes no WUE
    assert found.wue is None and found.onsite_l is None
    assert found.water_l == pytest.approx(12.0 * FR_L_PER_KWH, rel=1e-4)
    assert "no published WUE" in found.source


def test_the_callers_wue_replaces_the_published_one():
    assert water.footprint(10.0, 12.0, "FR", wue_l_per_kwh=0.5).onsite_l == pytest.approx(5.0)
    assert water.footprint(10.0, 12.0, "aws:eu-west-3", wue_l_per_kwh=0).onsite_l == 0.0


def test_a_subdivision_and_a_cloud_region_take_their_countrys_mix():
    us = water.footprint(1.0, 1.0, "US").grid.l_per_kwh
    assert water.footprint(1.0, 1.0, "US-CA").mix == "US"
    assert water.footprint(1.0, 1.0, "aws:us-east-1").offsite_l == pytest.approx(us)
    assert water.footprint(1.0, 1.0, intensity("US-CA")).grid.l_per_kwh == us  # a Grid works


def test_none_where_no_figure_exists():
    # Saudi Arabia 2022: 131 of 402 TWh from oil, which has no factor: no figure at all
    assert water.footprint(10.0, 12.0, "SA").offsite_l is None
    assert water.water_l(10.0, 12.0, "SA") is None
    assert water.water_l(10.0, 12.0, "WORLD") is None  # the world average has no mix
    found = water.footprint(10.0, 12.0, "SA", wue_l_per_kwh=0.2)
    assert found.water_l == pytest.approx(2.0) and not found.complete


@pytest.mark.parametrize(
    ("it_kwh", "facility_kwh", "wue"),
    [(-1.0, 1.0, None), (1.0, math.nan, None), (1.0, 1.0, -0.1), (True, 1.0, None)],
)
def test_bad_numbers_are_configuration_errors(it_kwh, facility_kwh, wue):
    with pytest.raises(ConfigurationError):
        water.footprint(it_kwh, facility_kwh, "FR", wue_l_per_kwh=wue)


def test_estimate_carries_the_water_of_its_it_and_facility_energy():
    from carbonlog.estimate import estimate

    # 8 x H100 (700 W) for 24 h in Paris on AWS: 134.4 kWh at the devices, x PUE at the site
    e = estimate("H100 SXM", count=8, hours=24, location="aws:eu-west-3")
    it_kwh = 700 * 8 * 24 / 1000
    assert e.energy_kwh == pytest.approx(it_kwh * e.pue)
    assert e.water_l == pytest.approx(0.12 * it_kwh + FR_L_PER_KWH * e.energy_kwh, rel=1e-4)
    assert e.to_dict()["water_l"] == e.water_l and "FR mix" in e.water_source
    dry = estimate("H100 SXM", count=8, hours=24, location="aws:eu-west-3", wue_l_per_kwh=0)
    assert dry.water_l == pytest.approx(FR_L_PER_KWH * e.energy_kwh, rel=1e-4)
    user = estimate("H100 SXM", hours=1, intensity=100)  # no location: no mix, no WUE
    assert user.water_l is None and user.water_source is None


def test_the_estimate_command_shows_water_and_embodied_with_their_sources(capsys):
    import argparse
    import json

    from carbonlog.cli import views
    from carbonlog.estimate import estimate

    found = estimate("H100 SXM", count=8, hours=24, location="aws:eu-west-3")
    args = argparse.Namespace(json=False, hardware="H100 SXM", format="markdown")
    views.estimate(found, args)
    text = capsys.readouterr().out
    assert f"{found.water_l:.3g} L (on site: 0.12 L/kWh" in " ".join(text.split())
    assert f"{found.embodied_kg:.3g} kg (164 kg CO2e per H100 SXM" in " ".join(text.split())
    views.estimate(found, argparse.Namespace(**{**vars(args), "json": True}))
    shown = json.loads(capsys.readouterr().out)
    assert shown["water_l"] == pytest.approx(found.water_l)
    assert shown["embodied_kg"] == pytest.approx(found.embodied_kg)


def test_the_docs_page_states_the_shipped_tables_country_count():
    from pathlib import Path

    from carbonlog.water import _grid_table

    page = Path(__file__).resolve().parents[2] / "docs" / "footprint.md"
    text = " ".join(page.read_text(encoding="utf-8").split())
    assert f"({len(_grid_table())} countries have one)" in text
