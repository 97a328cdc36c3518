"""Published training figures added from their primary sources (data/published_training.csv)."""

from __future__ import annotations

import pytest

from carbonlog import savings


@pytest.mark.parametrize(
    ("model", "kg", "kwh", "g_per_kwh"),
    [
        # Patterson et al. 2021, Table 4: net tCO2e and MWh of each training
        ("meena", 96_400, 232_000, 415.5),
        ("switch-transformer", 59_100, 179_000, 330.2),
        ("t5-11b", 46_700, 85_700, 544.9),
        ("gpt-3", 552_100, 1_287_000, 429.0),
    ],
)
def test_pattersons_trainings_and_their_implied_intensity(model, kg, kwh, g_per_kwh):
    row = next(r for r in savings.published_table() if r.model == model)
    assert (row.co2_kg, row.energy_kwh, row.energy_basis) == (kg, kwh, "published")
    assert "Patterson et al. 2021" in row.source and row.year == 2021
    assert row.co2_kg / row.energy_kwh * 1000 == pytest.approx(g_per_kwh, abs=0.1)


def test_the_switch_transformer_is_found_by_its_hub_name():
    assert savings.published_row("google/switch-c-2048").model == "switch-transformer"


def test_llama_3_3_is_the_pre_training_of_llama_3_1_70b():
    row = savings.published_row("meta-llama/Llama-3.3-70B-Instruct")
    assert row.model == "llama-3.1-70b"
    assert row.energy_kwh == 7.0e6 * 700 / 1000  # 7.0M H100-hours at 700 W
    assert "11,390 t" in row.notes and "Llama-3.3-70B-Instruct" in row.source
