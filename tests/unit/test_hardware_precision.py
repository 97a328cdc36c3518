"""The same work on other hardware, at the precision the work uses."""

from __future__ import annotations

import pytest

from carbonlog.estimate import estimate
from carbonlog.hardware import lookup


def test_tensor_fp16_is_the_default_where_both_rows_have_it():
    # 10 H100-hours at 989.5 TFLOPS = 10 x 989.5 / 165.2 RTX 4090-hours at 450 W
    e = estimate("H100 SXM", hours=10, location="FR", pue=1.0, compare_hardware="RTX 4090")
    (rtx,) = e.comparisons
    assert rtx.precision == "fp16"
    assert rtx.device_hours == pytest.approx(10 * 989.5 / 165.2)
    assert rtx.factor == pytest.approx((989.5 / 700) / (165.2 / 450))  # 3.85x the CO2
    assert rtx.factor > 2


def test_fp32_on_request_prices_the_plain_rate():
    e = estimate(
        "H100 SXM", hours=10, location="FR", pue=1.0, compare_hardware="RTX 4090", precision="fp32"
    )
    (rtx,) = e.comparisons
    assert rtx.precision == "fp32" and rtx.factor == pytest.approx((67 / 700) / (82.6 / 450))


def test_without_a_tensor_figure_on_one_side_it_falls_back_to_fp32_unless_asked():
    # Pascal has no tensor cores: 1 GTX 1080 Ti-hour at 11.34 TFLOPS FP32 on a Titan RTX (16.3)
    e = estimate("GTX 1080 Ti", hours=1, location="FR", pue=1.0, compare_hardware="Titan RTX")
    assert e.comparisons[0].precision == "fp32"
    assert e.comparisons[0].device_hours == pytest.approx(11.34 / 16.3)
    with pytest.raises(ValueError, match="at fp16"):
        estimate("GTX 1080 Ti", location="FR", compare_hardware="Titan RTX", precision="fp16")
    with pytest.raises(ValueError, match="precision must be"):
        estimate("T4", location="FR", compare_hardware="L4", precision="int8")


@pytest.mark.parametrize(
    ("name", "tflops16"),
    [
        ("RTX 4090", 165.2),  # Ada: 128 SMs x 1024 x 2.52 GHz / 2 (FP32 accumulate, half rate)
        ("RTX 3090", 71),
        ("RTX 3080", 59.5),
        ("RTX A6000", 154.8),
        ("RTX A5000", 64 * 1024 * 1.695 / 1000),
        ("RTX 2080 Ti", 53.8),
        ("Titan RTX", 130.5),
        ("Quadro RTX 8000", 130.5),
        ("Titan V", 110),
    ],
)
def test_modern_geforce_and_workstation_cards_have_their_tensor_figures(name, tflops16):
    assert lookup(name).tflops16 == pytest.approx(tflops16, abs=0.05)


def test_doubtful_rows_of_the_calculator_are_corrected():
    assert lookup("TPU v3").tdp_w == 220  # Google's measured mean (max 262 W)
    assert lookup("AGX Xavier").tflops32 == pytest.approx(512 * 2 * 1.377e9 / 1e12, abs=0.01)
    assert lookup("Tesla M40 24GB").memory_gb == 24
    assert lookup("TPU v3", "mlco2").tdp_w == 283  # the calculator keeps its own
