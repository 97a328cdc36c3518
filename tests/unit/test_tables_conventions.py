"""What every intensity row counts (its convention), and the life-cycle default."""

from __future__ import annotations

import pytest

from carbonlog.intensity import intensity
from carbonlog.intensity.tables import CONVENTIONS, mlco2_regions, tables


def test_every_row_names_its_convention():
    t = tables()
    for grid in [*t.grids.values(), *t.clouds.values()]:
        assert grid.convention in CONVENTIONS and grid.convention != "mixed", grid.code
    assert {g.convention for g in mlco2_regions().values()} == {"mixed"}


def test_life_cycle_is_the_default_where_any_source_has_it():
    t = tables()
    for grid in t.grids.values():
        if grid.convention != "life-cycle":
            # only US states (eGRID), Chinese provinces (CO2 only), a few Australian zones and
            # the world average have no life-cycle figure in the sources
            assert grid.code == "WORLD" or grid.code[:3] in ("US-", "CN-", "AU-"), grid.code
    cloud_direct = [g for g in t.clouds.values() if g.convention != "life-cycle"]
    for grid in cloud_direct:
        assert t.grids[grid.location].convention != "life-cycle", grid.code


@pytest.mark.parametrize(
    ("location", "g_per_kwh", "convention"),
    [
        # codecarbon's 2023 Quebec mix x its per-source factors: (0.2 x 743 gas + 0.3 x 816 oil
        # + 0.7 x 230 biomass + 0.01 x 48 solar + 6.7 x 26 wind + 92.1 x 26 hydro) / 100.01
        ("CA-QC", 3123.68 / 100.01, "life-cycle"),
        ("FR", 44.1791, "life-cycle"),  # Ember 2024
        ("US-IA", 634.156 * 0.45359237, "direct"),  # eGRID2023 STC2ERTA, lb/MWh -> g/kWh
        ("CN-BJ", 555.4, "direct CO2"),  # MEE 2023
        ("WORLD", 475, "direct CO2"),  # IEA 2019
        ("gcp:us-central1", 430, "direct"),  # Google's 2023 figure: Iowa has no life-cycle one
        ("gcp:europe-west6", 36.5993, "life-cycle"),  # Switzerland's Ember 2024, not Google's 59
    ],
)
def test_hand_worked_rows_and_their_conventions(location, g_per_kwh, convention):
    grid = intensity(location)
    assert grid.g_per_kwh == pytest.approx(g_per_kwh, rel=1e-6)
    assert grid.convention == convention


def test_a_figure_the_user_gives_has_no_convention():
    from carbonlog.intensity import resolve_site

    assert resolve_site(intensity=100).grid.convention is None
