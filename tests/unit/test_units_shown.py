"""Figures as a person reads them: energy and CO2 in SI-scaled units (63.1 mWh, 2.8 mg), never
in exponent form, one unit per quantity on a page or table, and everyday equivalents only where
they picture something."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from carbonlog import equivalents
from carbonlog.interval import Interval
from carbonlog.report.text import (
    Units,
    energy_unit,
    format_co2,
    format_energy,
    format_interval,
    format_summary,
    mass_unit,
    per_unit,
    significant,
    summary_table,
)
from carbonlog.tracking import Tracker

EXPONENT = re.compile(r"\d[eE][-+]?\d")


@pytest.mark.parametrize(
    ("kwh", "text"),
    [
        (6.305e-05, "63.1 mWh"),
        (0.063, "63 Wh"),
        (1.0, "1 kWh"),
        (0.9996, "1 kWh"),  # rounds up into the next unit, never "1e+03 Wh"
        (2.5e-10, "0.25 µWh"),
        (1234.0, "1.23 MWh"),
        (0.0, "0 Wh"),
    ],
)
def test_energy_reads_in_the_si_unit_of_its_size(kwh, text):
    assert format_energy(kwh) == text


@pytest.mark.parametrize(
    ("kg", "text"),
    [
        (2.8e-6, "2.8 mg"),
        (0.42, "420 g"),
        (8.1, "8.1 kg"),
        (652.3, "652 kg"),
        (24690.0, "24.7 t"),
        (0.99995, "1 kg"),
        (-0.003, "-3 g"),  # a saving can be negative
        (0.0, "0 g"),
    ],
)
def test_mass_reads_in_the_si_unit_of_its_size(kg, text):
    assert format_co2(kg) == text


@pytest.mark.parametrize("value", [10.0**e * m for e in range(-13, 9) for m in (1.0, 4.56, 9.999)])
def test_no_figure_is_in_exponent_form_and_every_one_reads_from_1_to_999(value):
    for text in (format_energy(value), format_co2(value)):
        number = text.split()[0]
        assert not EXPONENT.search(text), text
        if 1e-9 <= value < 5e8:  # within the units' range: from µWh and µg to GWh and kt
            assert 1 <= float(number.replace(",", "")) < 1000, text


def test_a_shared_unit_is_that_of_the_largest_figure():
    unit = energy_unit(2e-5, 0.004, 0.0)
    assert unit.symbol == "Wh"
    assert [format_energy(v, unit) for v in (2e-5, 0.004, 0.0)] == ["0.02 Wh", "4 Wh", "0 Wh"]
    assert mass_unit(3e-7, 2.5e-6).symbol == "mg"
    assert significant(0.00001234) == "0.0000123" and significant(123456.0) == "123,000"
    assert Units.of(_Figures(0.5, 0.002), _Figures(2.0, 0.0001)) == Units(
        energy_unit(2.0), mass_unit(0.002)
    )


class _Figures:
    def __init__(self, kwh: float, kg: float):
        self.energy_kwh, self.co2_kg = kwh, kg


def test_an_epoch_line_and_a_summary_share_one_unit_each():
    interval = Interval("epoch", 3, 0.0, 12.3, 180.0, 36.0, 10.0, 1.0, 50.0, "test", 1.0, 1.0)
    assert format_interval(interval) == (
        "epoch 3: 62.8 mWh, 3.14 mg CO2 (gpu 50, cpu 10, ram 2.78 mWh) in 12.3 s, 18 W"
    )
    banded = dataclasses.replace(interval, band_j={"gpu": 18.0, "cpu": 14.4, "ram": 4.0})
    # sqrt(18^2 + 14.4^2 + 4^2) = 23.40 J = 6.50 mWh; x 50 g/kWh = 0.325 mg
    assert format_interval(banded) == (
        "epoch 3: 62.8 ± 6.5 mWh, 3.14 ± 0.32 mg CO2 (gpu 50, cpu 10, ram 2.78 mWh) in 12.3 s, 18 W"
    )
    tracker = Tracker(intensity=100.0, power_w={"cpu": 10.0}, gpus=None, ledger=False).start()
    time.sleep(0.02)
    summary = tracker.stop()
    line = format_summary(summary, "fit")
    assert not EXPONENT.search(line), line
    energy_units = re.findall(r"(?<![/\w])[µmkMG]?Wh\b", line)
    assert set(energy_units) == {energy_unit(summary.energy_kwh).symbol}, line


def test_the_demo_table_has_its_units_in_the_headers_and_plain_numbers_in_the_cells():
    tracker = Tracker(intensity=100.0, power_w={"cpu": 10.0}, gpus=None, ledger=False).start()
    time.sleep(0.01)
    tracker.mark("epoch")
    summary = tracker.stop()
    lines = summary_table(summary).splitlines()
    energy, mass = energy_unit(summary.energy_kwh).symbol, mass_unit(summary.co2_kg).symbol
    assert lines[0].split() == ["interval", "seconds", energy, "CO2", mass, "W", "estimated"]
    assert [line.split()[0] for line in lines[2:]] == ["epoch", "end", "total", "(device"]
    assert lines[-1].endswith(f" {energy} before PUE)")
    assert not any(EXPONENT.search(line) for line in lines)


# -- equivalents ------------------------------------------------------------------------


def test_an_equivalent_is_shown_from_one_percent_of_its_unit():
    smallest = min(equivalents.EQUIVALENTS, key=lambda e: e.kg_per_unit)
    assert equivalents.meaningful(0.0099 * smallest.kg_per_unit) == []
    assert equivalents.meaningful(0.01 * smallest.kg_per_unit) == [smallest]
    assert equivalents.describe_all(6.3e-8) == []  # not "0.0000000013 flights"
    shown = equivalents.describe_all(2.0)  # 19 km, 243 phone charges, 0.04 flights, 2.2 months
    assert shown == [e.describe(2.0) for e in equivalents.EQUIVALENTS]
    assert [e.key for e in equivalents.meaningful(0.3)] == ["car_km", "smartphone_charges"] + [
        "tree_months"
    ]


def test_energy_per_unit_of_work_reads_in_prefixed_joules():
    demo = _Work(1e-5, samples=81920, tokens=None)  # 36 J over 5 epochs of 16,384 samples
    assert per_unit(demo) == "439 µJ per sample"
    assert per_unit(_Work(2.0, samples=100, tokens=1e6)) == "72 kJ per sample, 7.2 J per token"
    assert per_unit(_Work(2.0, samples=None, tokens=0)) is None  # nothing counted


class _Work:
    def __init__(self, kwh: float, samples: float | None, tokens: float | None):
        self.energy_kwh, self.samples, self.tokens = kwh, samples, tokens
