"""Embodied emissions: the table's rows, amortisation worked by hand, None where no figure."""

from __future__ import annotations

import csv
import math
from importlib import resources

import pytest

from carbonlog import embodied
from carbonlog.errors import ConfigurationError
from carbonlog.hardware import all_hardware

SIX_YEARS_H = 6 * 365 * 24  # 52,560 h


def test_every_row_names_a_hardware_row_and_carries_its_boundary_and_source():
    text = resources.files("carbonlog").joinpath("data", "embodied.csv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    names = {h.name for h in all_hardware()}
    assert rows
    for row in rows:
        assert row["hardware"] in names
        assert row["boundary"] in embodied.BOUNDARIES
        assert float(row["kg_co2e"]) > 0
        assert row["stages"] and len(row["source"]) > 40
        assert 2020 <= int(row["year"]) <= 2026


def test_the_published_figures_per_device():
    h100 = embodied.footprint("H100 SXM")
    assert h100.kg == pytest.approx(1312 / 8)  # one eighth of an HGX H100 baseboard
    assert h100.boundary == "card" and h100.stages == "cradle-to-gate"
    pcie = embodied.footprint("A100 PCIe 40 GB")
    assert (pcie.kg, pcie.boundary) == (181.0, "card")
    sxm = embodied.footprint("NVIDIA A100-SXM4-80GB")  # NVML's spelling
    assert (sxm.hardware, sxm.kg, sxm.boundary) == ("A100 SXM4 80 GB", 318.0, "card+server")


def test_amortised_over_six_years_of_full_use_by_default():
    # 8 x H100 for 24 h = 192 device-hours; 164 kg x 192 / 52,560 h
    assert embodied.LIFETIME_H == SIX_YEARS_H
    assert embodied.amortised_kg("H100", 8 * 24) == pytest.approx(31488 / 52560)
    assert embodied.amortised_kg("A100 PCIe 40 GB", 100) == pytest.approx(18100 / 52560)


def test_lifetime_and_utilisation_scale_the_share():
    # 164 kg x 192 / (4 years x 8,760 h x 0.5) = 31,488 / 17,520
    kg = embodied.amortised_kg("H100 SXM", 192, lifetime_h=4 * 8760, utilisation=0.5)
    assert kg == pytest.approx(31488 / 17520)
    assert embodied.life_share(8760, lifetime_h=4 * 8760, utilisation=0.5) == pytest.approx(0.5)
    assert embodied.amortised_kg("H100 SXM", 0) == 0.0


def test_none_where_no_figure_exists():
    assert embodied.footprint("T4") is None  # in the hardware table, no published figure
    assert embodied.amortised_kg("T4", 10) is None
    assert embodied.amortised_kg("no such accelerator", 10) is None
    assert embodied.footprint("A100 PCIe") is None  # ambiguous: the 40 GB or the 80 GB card


@pytest.mark.parametrize(
    ("device_hours", "lifetime_h", "utilisation"),
    [
        (-1, SIX_YEARS_H, 1.0),
        (math.nan, SIX_YEARS_H, 1.0),
        (True, SIX_YEARS_H, 1.0),
        (10, 0, 1.0),
        (10, math.inf, 1.0),
        (10, SIX_YEARS_H, 0.0),
        (10, SIX_YEARS_H, 1.5),
    ],
)
def test_bad_numbers_are_configuration_errors_even_without_a_figure(
    device_hours, lifetime_h, utilisation
):
    for name in ("H100 SXM", "T4"):
        with pytest.raises(ConfigurationError):
            embodied.amortised_kg(
                name, device_hours, lifetime_h=lifetime_h, utilisation=utilisation
            )


def test_estimate_carries_the_amortised_share_next_to_the_operational_co2():
    from carbonlog.estimate import estimate

    e = estimate("H100 SXM", count=8, hours=24, location="FR")
    assert e.embodied_kg == pytest.approx(164 * 192 / SIX_YEARS_H)
    assert e.co2_kg == pytest.approx(e.energy_kwh * e.grid.g_per_kwh / 1000)  # not inside
    assert "HGX H100" in e.embodied_source and "192 device-h" in e.embodied_source
    half = estimate("H100 SXM", count=8, hours=24, location="FR", utilisation=0.5)
    assert half.embodied_kg == pytest.approx(2 * e.embodied_kg)
    assert half.to_dict()["embodied_kg"] == half.embodied_kg
    assert estimate("T4", hours=10, location="FR").embodied_kg is None
    with pytest.raises(ConfigurationError):
        estimate("T4", hours=10, location="FR", lifetime_h=0)
