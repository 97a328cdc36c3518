"""scripts/build_tables.py rebuilds the calculator's own tables exactly as shipped."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference-data"


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference data not beside the checkout")
def test_the_script_rebuilds_the_calculators_tables(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "build_tables.py", tmp_path / "scripts")
    subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "build_tables.py"), str(REFERENCE)],
        check=True,
        capture_output=True,
    )
    for name in ("mlco2_regions.csv", "mlco2_hardware.csv", "grids.csv", "clouds.csv"):
        built = (tmp_path / "src" / "carbonlog" / "data" / name).read_text()
        assert built == (REPO / "src" / "carbonlog" / "data" / name).read_text(), name


def test_a_source_names_its_years_as_the_calculator_rows_do():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_tables
    finally:
        sys.path.pop(0)
    assert build_tables.figure_year("measured on  July 2, 2019 between 8 and 9 PM") == 2019
    assert build_tables.figure_year("x/2018_8_electricity_factors_august_2018_-_online.pdf") == 2018
    assert build_tables.figure_year("electricitymap average for oct21-oct22") == 2022
    assert build_tables.figure_year("https://x.org/pii/S095965261731627X") is None
    assert build_tables.convention("Green Algorithms v3: https://www.electricitymap.org") == (
        "life-cycle"
    )
    assert build_tables.convention("EPA eGRID2023 (via codecarbon 3.3.2)") == "direct"
