"""The AMD, Intel and Apple accelerators the meters see, found by the names their drivers give."""

from __future__ import annotations

import pytest

from carbonlog.estimate import estimate
from carbonlog.hardware import lookup


@pytest.mark.parametrize(
    ("reported", "row"),
    [
        ("AMD Instinct MI250X", "AMD Instinct MI250X"),  # amdsmi's product name
        ("AMD Instinct MI300X", "AMD Instinct MI300X"),
        ("MI325X", "AMD Instinct MI325X"),
        ("Intel(R) Data Center GPU Max 1550", "Intel Data Center GPU Max 1550"),  # torch.xpu
        ("Intel(R) Data Center GPU Max 1100", "Intel Data Center GPU Max 1100"),
        ("Intel(R) Arc(TM) A770 Graphics", "Intel Arc A770"),
        ("GAUDI2", "Intel Gaudi 2"),  # torch.hpu
        ("HL-325L", "Intel Gaudi 3"),  # hl-smi
        ("Apple M2 Max", "Apple M2 Max"),  # the CPU brand string
        ("Apple M4 Pro", "Apple M4 Pro"),
    ],
)
def test_the_names_drivers_report_find_their_rows(reported, row):
    assert lookup(reported).name == row


def test_intel_max_peaks_follow_from_cores_and_clock():
    # Xe-HPC per core and clock: 256 FP32 FLOP (8 vector engines x 16 lanes x FMA) and 4096
    # FP16/BF16 FLOP (8 XMX engines x 256 FMA)
    for name, cores, ghz in (("Max 1550", 128, 1.6), ("Max 1100", 56, 1.55)):
        row = lookup(name)
        assert row.tflops32 == pytest.approx(cores * 256 * ghz / 1000, abs=0.05)
        assert row.tflops16 == pytest.approx(cores * 4096 * ghz / 1000, abs=0.05)
    assert lookup("Arc A770").tflops32 == pytest.approx(4096 * 2 * 2.1 / 1000, abs=0.05)


def test_the_same_work_on_an_mi300x_instead_of_an_h100():
    # 100 H100-hours at 989.5 TFLOPS = 100 x 989.5 / 1307.4 MI300X-hours at 750 W
    e = estimate("H100 SXM", hours=100, location="FR", pue=1.0, compare_hardware="MI300X")
    (mi300x,) = e.comparisons
    assert mi300x.precision == "fp16"
    assert mi300x.energy_kwh == pytest.approx(100 * 989.5 / 1307.4 * 750 / 1000)
    assert mi300x.factor == pytest.approx((989.5 / 700) / (1307.4 / 750))


def test_apple_publishes_no_power_so_estimate_asks_for_it():
    with pytest.raises(ValueError, match="tdp_w"):
        estimate("Apple M1 Max", hours=1, location="FR")
    e = estimate("Apple M1 Max", hours=10, location="FR", pue=1.0, tdp_w=60)
    assert e.energy_kwh == pytest.approx(0.6)
    assert lookup("Apple M1 Max").tflops32 == 10.4 and lookup("Apple M3").tflops32 is None
