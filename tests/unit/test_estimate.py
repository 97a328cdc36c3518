"""The calculator: formula, the ML CO2 Impact calculator's own rows, hardware, statement."""

from __future__ import annotations

import math

import pytest

from carbonlog.estimate import estimate
from carbonlog.hardware import all_hardware, lookup
from carbonlog.intensity import intensity
from carbonlog.report.statement import BIBTEX


def test_with_pue_1_it_is_tdp_x_hours_x_count_x_intensity():
    e = estimate("A100 SXM4 80 GB", count=8, hours=24, location="FR", pue=1.0)
    expected_kwh = 400 * 24 * 8 / 1000
    assert e.energy_kwh == pytest.approx(expected_kwh)
    assert e.co2_kg == pytest.approx(expected_kwh * intensity("FR").g_per_kwh / 1000)
    assert e.offset_ratio == 0 and e.offset_kg == 0 and e.cleanest is None


def test_pue_multiplies_energy_and_cloud_regions_use_the_provider_pue():
    e = estimate("T4", count=2, hours=10, location="gcp:us-central1")
    assert e.pue == pytest.approx(1.11)
    assert e.energy_kwh == pytest.approx(70 * 2 * 10 / 1000 * 1.11)
    assert e.co2_kg == pytest.approx(e.energy_kwh * 430 / 1000)
    assert e.offset_kg == pytest.approx(e.co2_kg)  # Google offsets 100 %


def test_cleanest_region_of_the_same_provider_and_how_many_times_less():
    e = estimate("V100 SXM2 16GB", hours=100, location="gcp:asia-south1", pue=1.0)
    regions = [g for code, g in _clouds().items() if code.startswith("gcp:")]
    cleanest = min(regions, key=lambda g: g.g_per_kwh)
    assert e.cleanest.code == cleanest.code
    assert e.cleanest_factor == pytest.approx(
        intensity("gcp:asia-south1").g_per_kwh / cleanest.g_per_kwh
    )
    assert e.cleanest_co2_kg == pytest.approx(e.co2_kg / e.cleanest_factor)


def test_the_cleanest_region_itself_has_factor_one():
    e = estimate("T4", location="gcp:us-central1", pue=1.0)
    again = estimate("T4", location=e.cleanest.code, pue=1.0)
    assert again.cleanest_factor == pytest.approx(1.0)


def _clouds():
    from carbonlog.intensity.tables import tables

    return tables().clouds


def test_compare_hardware_prices_the_same_work_by_flops_per_watt():
    e = estimate(
        "V100 SXM2 16GB",
        count=4,
        hours=10,
        location="FR",
        pue=1.0,
        compare_hardware=["A100 SXM4 80 GB", "T4"],
    )
    a100, t4 = e.comparisons
    assert a100.precision == "fp16"
    # 40 V100-hours at 125 TFLOPS = 40 x 125 / 312 A100-hours at 400 W
    assert a100.device_hours == pytest.approx(40 * 125 / 312)
    assert a100.energy_kwh == pytest.approx(40 * 125 / 312 * 400 / 1000)
    assert a100.co2_kg == pytest.approx(a100.energy_kwh * intensity("FR").g_per_kwh / 1000)
    assert a100.factor == pytest.approx((125 / 300) / (312 / 400))  # FLOPS/W ratio
    assert a100.factor < 1 and t4.hardware.name == "T4"


def test_compare_falls_back_to_fp32_and_refuses_without_flops():
    e = estimate("GTX 1080", hours=1, location="FR", compare_hardware="RTX 4090")
    assert e.comparisons[0].precision == "fp32"
    with pytest.raises(ValueError, match="cannot compare"):
        estimate("Tesla P4", location="FR", compare_hardware="T4")


# Hardware table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("H200", "H200 SXM"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("h100 pcie", "H100 PCIe"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80 GB"),
        ("A100 PCIe 80GB", "A100 PCIe 80 GB"),
        ("NVIDIA L4", "L4"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "Tesla V100-SXM2-16GB"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("TPU v2", "TPU v2"),
        ("tpuv3", "TPU v3"),
        ("TPU v4", "TPU v4"),
        ("TPU v5e", "TPU v5e"),
        ("tpu v5p", "TPU v5p"),
        ("Xeon Gold 6148", "Intel Xeon Gold 6148"),
    ],
)
def test_hardware_names_match_loosely(name, row):
    assert lookup(name).name == row


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("A100 PCIe", "A100 PCIe 80 GB"),
        ("H10", "H100 NVL"),
        ("RTX 4080", "RTX 4090"),
        ("T5", None),
    ],
)
def test_unknown_or_ambiguous_hardware_lists_close_matches(name, listed):
    with pytest.raises(ValueError, match="hardware") as info:
        lookup(name)
    if listed:
        assert repr(listed) in str(info.value)


def test_a_bare_family_name_means_its_sxm_part():
    assert lookup("A100").name == "A100 SXM4 80 GB"
    assert lookup("H100").name == "H100 SXM"
    assert lookup("V100").name == "Tesla V100-SXM2-32GB"


def test_the_known_defects_are_fixed():
    a10g = lookup("A10G")  # the shifted row of gpus.csv
    assert a10g.tdp_w == 150 and a10g.tflops32 == 31.52 and a10g.memory_gb == 24
    assert lookup("TPU v2").tdp_w == 221  # Patterson et al.; TPU v3: test_hardware_precision
    assert lookup("V100 PCIe 16GB").tdp_w == 250 and lookup("V100 SXM2 16GB").tdp_w == 300
    assert lookup("A100 PCIe 80 GB").tdp_w == 300
    assert lookup("H100 SXM").tflops16 == 989.5  # dense, not the with-sparsity figure


def test_required_accelerators_are_covered_with_sources():
    for name in (
        "H200",
        "H100 SXM",
        "A100 SXM4 80 GB",
        "L4",
        "T4",
        "V100 SXM2 16GB",
        "TPU v2",
        "TPU v3",
        "TPU v4",
        "TPU v5e",
        "TPU v5p",
    ):
        row = lookup(name)
        assert row.source and row.kind in ("gpu", "tpu")
        assert row.tflops16
    for row in all_hardware():
        assert row.source and (row.tdp_w is None or 1 <= row.tdp_w <= 1000), row


def test_rows_without_power_need_tdp_w():
    with pytest.raises(ValueError, match="tdp_w"):
        estimate("TPU v5p", hours=1, location="FR")
    e = estimate("TPU v5p", hours=2, location="FR", pue=1.0, tdp_w=400)
    assert e.energy_kwh == pytest.approx(0.8) and e.tdp_w == 400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": 1.5},
        {"count": True},
        {"hours": 0},
        {"hours": float("nan")},
        {"hours": -1},
        {"pue": 0.5},
        {"intensity": -3},
        {"tdp_w": 0},
        {"location": "Atlantis"},
    ],
)
def test_bad_arguments_are_value_errors(kwargs):
    options = {"hardware": "T4", "location": "FR", **kwargs}
    with pytest.raises(ValueError):
        estimate(**options)


# Statement ------------------------------------------------------------------------------


def test_markdown_statement_for_a_cloud_region():
    e = estimate("A100 SXM4 80 GB", count=8, hours=24, location="gcp:us-central1")
    text = e.statement()
    assert text.startswith(
        "Experiments were conducted using Google Cloud Platform in region "
        "us-central1, which has a carbon efficiency of 0.43 kgCO₂eq/kWh"
    )
    assert "power usage effectiveness of 1.11" in text
    assert (
        "A cumulative of 192 hours of computation was performed on hardware of type "
        "A100 SXM4 80 GB (TDP of 400W)." in text
    )
    assert (
        f"Total emissions are estimated to be {e.co2_kg:.2f} kgCO₂eq of which 100 percents "
        "were directly offset by the cloud provider." in text
    )
    assert "[Lacoste et al. 2019](https://arxiv.org/abs/1910.09700)" in text


def test_latex_statement_escapes_and_cites():
    e = estimate("T4", hours=5, location="aws:eu-west-3", pue=1.0)
    text = e.statement("latex")
    assert "kgCO$_2$eq/kWh" in text and "\\cite{lacoste2019quantifying}" in text
    assert "of which 0 percents were directly offset" in text
    assert "lacoste2019quantifying" in BIBTEX


def test_statement_off_the_cloud_has_no_offset_sentence():
    text = estimate("T4", hours=100, location="FR").statement()
    assert "a private infrastructure in France" in text and "offset" not in text
    assert "power usage effectiveness" not in text


def test_statement_rejects_unknown_formats():
    with pytest.raises(ValueError, match="markdown"):
        estimate("T4", location="FR").statement("html")


def test_to_dict_is_plain_and_finite():
    facts = estimate("T4", location="gcp:us-west1", compare_hardware="L4").to_dict()
    assert facts["location"] == "gcp:us-west1" and facts["comparisons"][0]["hardware"] == "L4"
    assert all(math.isfinite(v) for v in (facts["energy_kwh"], facts["co2_kg"]))


def test_figures_past_any_real_run_are_refused_not_infinite():
    with pytest.raises(ValueError, match="overflow"):
        estimate(hardware="A100 SXM4 80GB", count=10**6, hours=1e308, location="FR")
